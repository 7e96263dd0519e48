"""An in-memory PipelineStore: what the watch cache would hold, plus recorded writes.

It reuses the real `RunWaiters`, so a synchronous run in a unit test waits exactly as it does
against the cluster: on a Future that an object change resolves.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from datapipelines.api.cache import RunWaiters
from datapipelines.api.errors import KubeUnavailable, NotFound
from datapipelines.api.store import Obj, PipelineStore
from datapipelines.resources import API_VERSION, BATCH_KIND, CONNECTION_KIND, RUN_KIND

T0 = "2026-11-30T08:00:00Z"
KEY = "unit-test-key-0123456789"
OLD_KEY = "unit-test-old-key-9876543210"
AUTH = {"X-API-Key": KEY}


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    """RFC 7386 JSON merge patch, in place."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


def connection(name: str, **spec: Any) -> Obj:
    body: dict[str, Any] = {
        "type": "rest_api",
        "enabled": True,
        "schemaName": name.replace("-", "_"),
        "concurrencyPolicy": "Forbid",
        "retries": 0,
        "timeoutSeconds": 60,
    }
    status = spec.pop("status", None)
    body.update(spec)
    obj: Obj = {
        "apiVersion": API_VERSION,
        "kind": CONNECTION_KIND,
        "metadata": {"name": name, "namespace": "test", "resourceVersion": "1"},
        "spec": body,
    }
    if status is not None:
        obj["status"] = status
    return obj


class FakeStore(PipelineStore):
    def __init__(self, namespace: str = "test") -> None:
        super().__init__()
        self.namespace = namespace
        self.ready = True
        self.unreachable = False  # writes fail as if the apiserver were gone
        self._connections: dict[str, Obj] = {}
        self._runs: dict[str, Obj] = {}
        self._batches: dict[str, Obj] = {}
        self.deleted_jobs: list[str] = []
        self.patches: list[tuple[str, str, Obj]] = []
        self.waiters = RunWaiters()
        self.on_create_run: Callable[[Obj], None] | None = None
        self._rv = itertools.count(100)
        self._ids = itertools.count(1)
        self.started = False

    # test helpers ----------------------------------------------------------------------------
    def add_connection(self, name: str, **spec: Any) -> Obj:
        obj = connection(name, **spec)
        self._connections[name] = obj
        return obj

    def add_run(
        self,
        name: str,
        connection_name: str,
        phase: str | None = None,
        *,
        result: dict[str, Any] | None = None,
        batch: str | None = None,
        trigger: str = "api",
        **status: Any,
    ) -> Obj:
        labels = {
            "datapipelines.io/connection": connection_name,
            "datapipelines.io/trigger": trigger,
        }
        if batch:
            labels["datapipelines.io/batch"] = batch
        obj: Obj = {
            "apiVersion": API_VERSION,
            "kind": RUN_KIND,
            "metadata": {
                "name": name,
                "namespace": self.namespace,
                "labels": labels,
                "creationTimestamp": status.pop("creationTimestamp", T0),
                "resourceVersion": str(next(self._rv)),
            },
            "spec": {"connectionName": connection_name, "trigger": trigger},
        }
        st: dict[str, Any] = dict(status)
        if phase:
            st["phase"] = phase
        if result is not None:
            st["result"] = result
        if st:
            obj["status"] = st
        self._runs[name] = obj
        self.waiters.on_change("ADDED", obj)
        return obj

    def add_batch(self, name: str, connections: list[str], **status: Any) -> Obj:
        obj: Obj = {
            "apiVersion": API_VERSION,
            "kind": BATCH_KIND,
            "metadata": {
                "name": name,
                "namespace": self.namespace,
                "creationTimestamp": T0,
                "resourceVersion": str(next(self._rv)),
            },
            "spec": {"connections": connections},
        }
        if status:
            obj["status"] = dict(status)
        self._batches[name] = obj
        return obj

    def update_run_status(self, name: str, **status: Any) -> Obj:
        run = self._runs[name]
        merge(run.setdefault("status", {}), status)
        run["metadata"]["resourceVersion"] = str(next(self._rv))
        self.waiters.on_change("MODIFIED", run)
        return run

    def finish_run(self, name: str, phase: str = "Succeeded", **result: Any) -> Obj:
        body = {
            "success": phase == "Succeeded",
            "durationMs": 1500,
            "rowsInserted": 10,
            "recordsReported": 10,
            "progressCounts": {"extract": {"items": 10}},
            "error": None if phase == "Succeeded" else "boom",
            "report": "loaded 10 rows",
            "reportTruncated": False,
        }
        body.update(result)
        return self.update_run_status(
            name,
            phase=phase,
            startTime=T0,
            completionTime="2026-11-30T08:00:02Z",
            attempts=1,
            result=body,
        )

    def delete_run(self, name: str) -> None:
        run = self._runs.pop(name)
        self.waiters.on_change("DELETED", run)

    # PipelineStore ---------------------------------------------------------------------------
    async def start(self) -> None:
        self.started = True

    def readiness(self) -> tuple[bool, str]:
        return (True, "synced") if self.ready else (False, "connection refused (fake)")

    def connections(self) -> list[Obj]:
        self.ensure_ready()
        return list(self._connections.values())

    def connection(self, name: str) -> Obj | None:
        self.ensure_ready()
        return self._connections.get(name)

    def runs(self) -> list[Obj]:
        self.ensure_ready()
        return list(self._runs.values())

    def run(self, name: str) -> Obj | None:
        self.ensure_ready()
        return self._runs.get(name)

    def batch(self, name: str) -> Obj | None:
        self.ensure_ready()
        return self._batches.get(name)

    def _check_reachable(self, what: str) -> None:
        if self.unreachable:
            raise KubeUnavailable(f"{what}: Kubernetes API not reachable (fake)")

    def _stamp(self, manifest: Obj) -> Obj:
        obj = copy.deepcopy(manifest)
        meta = obj["metadata"]
        meta["name"] = meta.pop("generateName", "x-") + f"{next(self._ids):05d}"
        meta["namespace"] = self.namespace
        meta["creationTimestamp"] = now()
        meta["resourceVersion"] = str(next(self._rv))
        return obj

    async def create_run(self, manifest: Obj) -> Obj:
        self._check_reachable("creating the PipelineRun")
        obj = self._stamp(manifest)
        self._runs[obj["metadata"]["name"]] = obj
        if self.on_create_run is not None:
            self.on_create_run(obj)
        return copy.deepcopy(obj)

    async def create_batch(self, manifest: Obj) -> Obj:
        self._check_reachable("creating the PipelineBatch")
        obj = self._stamp(manifest)
        self._batches[obj["metadata"]["name"]] = obj
        return copy.deepcopy(obj)

    async def patch_run(self, name: str, patch: Obj) -> Obj:
        self._check_reachable("patching")
        if name not in self._runs:
            raise NotFound(f"pipelineruns/{name} not found")
        merge(self._runs[name], patch)
        self.patches.append(("run", name, patch))
        return copy.deepcopy(self._runs[name])

    async def patch_batch(self, name: str, patch: Obj) -> Obj:
        self._check_reachable("patching")
        if name not in self._batches:
            raise NotFound(f"pipelinebatches/{name} not found")
        merge(self._batches[name], patch)
        self.patches.append(("batch", name, patch))
        return copy.deepcopy(self._batches[name])

    async def delete_job(self, name: str) -> bool:
        self._check_reachable("deleting the Job")
        self.deleted_jobs.append(name)
        return True

    async def wait_for_run_end(self, name: str) -> Obj | None:
        self.ensure_ready()
        return await self.waiters.wait(name, self._runs.get(name))
