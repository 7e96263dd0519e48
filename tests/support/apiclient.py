"""The tests' own apiserver client: the operator's ``Kube`` (deadlines, no leadership guard)
plus the reads and spec writes a test needs and the operator itself never makes."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from datapipelines.operator.kube import MERGE_PATCH, Kube
from datapipelines.resources import BATCH_PLURAL, CONNECTION_PLURAL, LABEL_RUN, RUN_PLURAL


class TestKube(Kube):
    __test__ = False  # not a pytest class

    @classmethod
    async def open(cls, kubeconfig: Path | str) -> TestKube:
        base = await Kube.connect(str(kubeconfig), 30)
        return cls(base.api, 30)

    async def get(self, ns: str, plural: str, name: str) -> dict[str, Any] | None:
        return await self.request("GET", self.custom(ns, plural, name), tolerate=(404,))

    async def list_objects(
        self, ns: str, plural: str, *, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        result = await self.request(
            "GET", self.custom(ns, plural), query={"labelSelector": label_selector}
        )
        return list((result or {}).get("items") or [])

    async def patch(
        self, ns: str, plural: str, name: str, body: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Merge-patch of spec/metadata (raises on any error but 404)."""
        return await self.request(
            "PATCH",
            self.custom(ns, plural, name),
            body=body,
            content_type=MERGE_PATCH,
            tolerate=(404,),
        )

    async def get_run(self, ns: str, name: str) -> dict[str, Any] | None:
        return await self.get(ns, RUN_PLURAL, name)

    async def get_connection(self, ns: str, name: str) -> dict[str, Any] | None:
        return await self.get(ns, CONNECTION_PLURAL, name)

    async def get_batch(self, ns: str, name: str) -> dict[str, Any] | None:
        return await self.get(ns, BATCH_PLURAL, name)

    async def get_job(self, ns: str, name: str) -> dict[str, Any] | None:
        return await self.request("GET", self.jobs(ns, name), tolerate=(404,))

    async def list_jobs(self, ns: str) -> list[dict[str, Any]]:
        result = await self.request("GET", self.jobs(ns))
        return list((result or {}).get("items") or [])

    async def delete_job(self, ns: str, name: str) -> bool:
        return await self.delete(self.jobs(ns, name))

    async def pods_of_run(self, ns: str, run: str) -> list[dict[str, Any]]:
        result = await self.request(
            "GET",
            f"/api/v1/namespaces/{quote(ns)}/pods",
            query={"labelSelector": f"{LABEL_RUN}={run}"},
        )
        return list((result or {}).get("items") or [])

    async def events_of(self, ns: str, name: str) -> list[dict[str, Any]]:
        result = await self.request(
            "GET",
            f"/api/v1/namespaces/{quote(ns)}/events",
            query={"fieldSelector": f"involvedObject.name={name}"},
        )
        return list((result or {}).get("items") or [])

    async def lease(self, ns: str, name: str) -> dict[str, Any] | None:
        return await self.get_lease(ns, name, 30)
