"""Every version of a namespace's objects, as the apiserver's watches deliver them, kept for a
test to check afterwards what happened in between (which Jobs ever existed, who wrote what).

    async with WatchLog(cluster.kube, ns, ("jobs", "pipelineruns")) as log:
        ...                                    # the test acts
        log.job_uids()                         # {job name: {every uid it ever had}}
        log.writes(manager)                    # managedFields entries of that fieldManager

Each resource is listed, then watched from the list's resourceVersion (re-listed after a 410),
so no version between entering and leaving the block is missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Self

import aiohttp

from datapipelines.resources import BATCH_PLURAL, CONNECTION_PLURAL, GROUP, RUN_PLURAL, VERSION
from datapipelines.resources.times import parse_time
from tests.support.apiclient import TestKube

PATHS = {
    "jobs": "/apis/batch/v1/namespaces/{ns}/jobs",
    "pods": "/api/v1/namespaces/{ns}/pods",
    "events": "/api/v1/namespaces/{ns}/events",
    "leases": "/apis/coordination.k8s.io/v1/namespaces/{ns}/leases",
    RUN_PLURAL: f"/apis/{GROUP}/{VERSION}/namespaces/{{ns}}/{RUN_PLURAL}",
    CONNECTION_PLURAL: f"/apis/{GROUP}/{VERSION}/namespaces/{{ns}}/{CONNECTION_PLURAL}",
    BATCH_PLURAL: f"/apis/{GROUP}/{VERSION}/namespaces/{{ns}}/{BATCH_PLURAL}",
}


@dataclass(frozen=True)
class Version:
    resource: str
    type: str  # LISTED, ADDED, MODIFIED, DELETED
    obj: dict[str, Any]
    seen: float  # time.monotonic() when the test received it

    @property
    def name(self) -> str:
        return str(self.obj["metadata"]["name"])

    @property
    def uid(self) -> str:
        return str(self.obj["metadata"]["uid"])


@dataclass(frozen=True)
class Write:
    """One managedFields entry: ``manager`` last changed these fields at ``time`` (seconds)."""

    resource: str
    name: str
    manager: str
    operation: str
    subresource: str
    time: datetime | None
    fields: dict[str, Any]


class WatchLog:
    def __init__(self, kube: TestKube, namespace: str, resources: Iterable[str]) -> None:
        self.kube = kube
        self.namespace = namespace
        self.resources = tuple(resources)
        self.versions: list[Version] = []
        self.changed = asyncio.Event()
        self._listed = {r: asyncio.Event() for r in self.resources}
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Self:
        for resource in self.resources:
            path = PATHS[resource].format(ns=self.namespace)
            self._tasks.append(asyncio.create_task(self._follow(resource, path)))
        listed = asyncio.gather(*(e.wait() for e in self._listed.values()))
        done, _ = await asyncio.wait(
            [asyncio.ensure_future(listed), *self._tasks],
            timeout=30,
            return_when=asyncio.FIRST_COMPLETED,
        )
        try:
            for task in self._tasks:
                if task in done:
                    task.result()  # a watch that failed at once: raise its error
            if not listed.done():
                listed.cancel()
                raise AssertionError(f"the watches of {self.resources} did not start in 30 s")
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task

    # ------------------------------------------------------------------ queries

    def of(self, resource: str) -> list[Version]:
        return [v for v in self.versions if v.resource == resource]

    def job_uids(self) -> dict[str, set[str]]:
        """Every uid each Job name ever had while the log was open."""
        uids: dict[str, set[str]] = {}
        for v in self.of("jobs"):
            uids.setdefault(v.name, set()).add(v.uid)
        return uids

    def writes(self, manager: str | None = None) -> list[Write]:
        """The managedFields entries seen (each once), of ``manager`` or of everyone."""
        found: dict[tuple[Any, ...], Write] = {}
        for v in self.versions:
            for entry in v.obj["metadata"].get("managedFields") or []:
                if manager is not None and entry.get("manager") != manager:
                    continue
                write = Write(
                    resource=v.resource,
                    name=v.name,
                    manager=str(entry.get("manager")),
                    operation=str(entry.get("operation")),
                    subresource=str(entry.get("subresource") or ""),
                    time=parse_time(entry["time"]) if entry.get("time") else None,
                    fields=entry.get("fieldsV1") or {},
                )
                key = (v.uid, write.manager, write.operation, write.subresource, entry.get("time"))
                found.setdefault(key, write)
        return list(found.values())

    async def wait_for(self, predicate: Any, seconds: float, what: str) -> Version:
        """The first version (seen so far or arriving within ``seconds``) matching."""
        deadline = time.monotonic() + seconds
        checked = 0
        while True:
            for v in self.versions[checked:]:
                if predicate(v):
                    return v
            checked = len(self.versions)
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out after {seconds}s waiting for {what}")
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), left)

    # ------------------------------------------------------------------ the watches

    def _add(self, resource: str, type_: str, obj: dict[str, Any]) -> None:
        self.versions.append(Version(resource, type_, obj, time.monotonic()))
        self.changed.set()

    async def _follow(self, resource: str, path: str) -> None:
        rv: str | None = None
        while True:
            if rv is None:
                listing = await self.kube.request("GET", path)
                assert listing is not None
                for item in listing.get("items") or []:
                    self._add(resource, "LISTED", item)
                rv = str(listing["metadata"]["resourceVersion"])
                self._listed[resource].set()
            try:
                rv = await self._watch(resource, path, rv)
            except (aiohttp.ClientError, TimeoutError, ConnectionError):
                await asyncio.sleep(0.2)

    async def _watch(self, resource: str, path: str, rv: str) -> str | None:
        """One watch request; the resourceVersion to go on from (None: list again)."""
        response = await self.kube.api.call_api(
            path,
            "GET",
            query_params=[
                ("watch", "true"),
                ("resourceVersion", rv),
                ("allowWatchBookmarks", "true"),
                ("timeoutSeconds", "240"),
            ],
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
            _preload_content=False,
            _request_timeout=aiohttp.ClientTimeout(total=None, connect=10, sock_read=300),
        )
        buffer = b""
        try:
            async for chunk in response.content.iter_any():
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    obj = event.get("object") or {}
                    if event.get("type") == "ERROR":
                        return None if obj.get("code") == 410 else rv
                    rv = str(obj.get("metadata", {}).get("resourceVersion") or rv)
                    if event.get("type") != "BOOKMARK":
                        self._add(resource, str(event.get("type")), obj)
        finally:
            response.release()
        return rv
