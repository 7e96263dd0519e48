"""Helpers of the operator's integration tests: manifests and the tests' view of a namespace
through the operator's own Kube client. Shared helpers: tests/support/ (kube.py, processes.py,
waiting.py, http_source.py)."""

from __future__ import annotations

from typing import Any

from datapipelines.resources import (
    API_VERSION,
    BATCH_KIND,
    BATCH_PLURAL,
    CONNECTION_KIND,
    CONNECTION_PLURAL,
    RUN_KIND,
    RUN_PLURAL,
)
from tests.support.apiclient import TestKube
from tests.support.http_source import demo_source_spec
from tests.support.kube import scratch_duckdb
from tests.support.waiting import wait_until


def connection(name: str, *, url: str = "http://127.0.0.1:9/", **spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "type": "rest_api",
        "schemaName": "demo_data",
        "source": demo_source_spec(url),
        "destination": scratch_duckdb(name),
    }
    base.update(spec)
    return {
        "apiVersion": API_VERSION,
        "kind": CONNECTION_KIND,
        "metadata": {"name": name},
        "spec": base,
    }


def run(name: str, conn: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": RUN_KIND,
        "metadata": {"name": name},
        "spec": {"connectionName": conn, "trigger": "api", **spec},
    }


def batch(name: str, conns: list[str], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": BATCH_KIND,
        "metadata": {"name": name},
        "spec": {"connections": conns, **spec},
    }


class Cluster:
    """The test's view of one namespace."""

    def __init__(self, kube: TestKube, namespace: str) -> None:
        self.kube = kube
        self.ns = namespace

    async def create(self, plural: str, body: dict[str, Any]) -> dict[str, Any]:
        created = await self.kube.create(self.ns, plural, body)
        assert created is not None
        return created

    async def connection(self, name: str, **spec: Any) -> dict[str, Any]:
        return await self.create(CONNECTION_PLURAL, connection(name, **spec))

    async def run(self, name: str, conn: str, **spec: Any) -> dict[str, Any]:
        return await self.create(RUN_PLURAL, run(name, conn, **spec))

    async def batch(self, name: str, conns: list[str], **spec: Any) -> dict[str, Any]:
        return await self.create(BATCH_PLURAL, batch(name, conns, **spec))

    async def get_run(self, name: str) -> dict[str, Any] | None:
        return await self.kube.get_run(self.ns, name)

    async def get_connection(self, name: str) -> dict[str, Any] | None:
        return await self.kube.get_connection(self.ns, name)

    async def get_batch(self, name: str) -> dict[str, Any] | None:
        return await self.kube.get_batch(self.ns, name)

    async def phase(self, name: str) -> str | None:
        run = await self.get_run(name)
        return ((run or {}).get("status") or {}).get("phase")

    async def wait_phase(self, name: str, *phases: str, seconds: float = 60) -> dict[str, Any]:
        async def probe() -> dict[str, Any] | None:
            run = await self.get_run(name)
            if run and (run.get("status") or {}).get("phase") in phases:
                return run
            return None

        return await wait_until(probe, seconds, what=f"run {name} in {phases}")

    async def cancel_run(self, name: str) -> None:
        await self.kube.patch(self.ns, RUN_PLURAL, name, {"spec": {"cancelRequested": True}})

    async def cancel_batch(self, name: str) -> None:
        await self.kube.patch(self.ns, BATCH_PLURAL, name, {"spec": {"cancelRequested": True}})

    async def job(self, name: str) -> dict[str, Any] | None:
        return await self.kube.get_job(self.ns, name)

    async def jobs(self) -> list[dict[str, Any]]:
        return await self.kube.list_jobs(self.ns)

    async def delete_job(self, name: str) -> None:
        await self.kube.delete_job(self.ns, name)

    async def active_runs(self, conn: str) -> list[str]:
        """Names of the connection's unfinished runs, in queue order (status.sequence)."""
        runs = [
            r
            for r in await self.runs()
            if r["spec"]["connectionName"] == conn
            and (r.get("status") or {}).get("phase") not in ("Succeeded", "Failed", "Cancelled")
        ]
        runs.sort(
            key=lambda r: ((r.get("status") or {}).get("sequence") or 0, r["metadata"]["name"])
        )
        return [r["metadata"]["name"] for r in runs]

    async def runs(self) -> list[dict[str, Any]]:
        return await self.kube.list_objects(self.ns, RUN_PLURAL)

    async def events(self, name: str) -> list[dict[str, Any]]:
        return await self.kube.events_of(self.ns, name)
