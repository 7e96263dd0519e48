"""The interface between the routes and Kubernetes: the catalog (reads) plus a few writes.

`KubeStore` (kube.py) implements it over the watch-fed catalog and the apiserver; unit tests use
an in-memory fake (tests/unit/api/fakekube.py) that feeds the same catalog. Reads never do I/O;
writes are the only apiserver calls a request makes (and a report read on demand).

Names: the API serves every watched namespace under one name space. A connection name that
exists in two watched namespaces is refused (409, naming them) by every endpoint that names it;
task ids are run and batch names — a batch task is the PipelineBatches of that name, one per
namespace that had enabled connections.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator
from typing import Any

from datapipelines.api.catalog import Catalog, ConnectionSummary
from datapipelines.api.errors import Conflict, KubeUnavailable
from datapipelines.resources.batch import PipelineBatch
from datapipelines.resources.run import KeptLog, LoadedSchema, PipelineRun

Obj = dict[str, Any]


class PipelineStore(ABC):
    """Connections, runs and batches of the watched namespaces."""

    namespaces: list[str]
    """The watched namespaces ([] = all)."""

    def __init__(self) -> None:
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    # lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:  # noqa: B027 - optional hook
        """Start watching (called from the app's lifespan)."""

    async def stop(self) -> None:  # noqa: B027 - optional hook
        """Stop watching and close connections."""

    # readiness -------------------------------------------------------------------------------
    @abstractmethod
    def readiness(self) -> tuple[bool, str]:
        """(ready, reason): ready once the cache has synced with the apiserver."""

    def ensure_ready(self) -> None:
        ready, reason = self.readiness()
        if not ready:
            raise KubeUnavailable(f"Kubernetes API not reachable: {reason}")

    @property
    @abstractmethod
    def catalog(self) -> Catalog:
        """What the watches hold (no I/O)."""

    # reads (from the catalog, no I/O) --------------------------------------------------------
    def connection(self, name: str, within: set[str] | None = None) -> ConnectionSummary | None:
        """The connection named ``name`` (in the namespaces `within`, None = any watched one);
        Conflict when two of them have one."""
        keys = _within(self.catalog.connection_keys_named(name), within)
        if len(keys) > 1:
            where = ", ".join(ns for ns, _ in keys)
            raise Conflict(
                f"connection {name!r} exists in namespaces {where}: connection names must be "
                "unique across the namespaces this API serves (rename one of them)",
                connection=name,
                namespaces=[ns for ns, _ in keys],
            )
        return self.catalog.connection(keys[0]) if keys else None

    def run(self, name: str, within: set[str] | None = None) -> PipelineRun | None:
        keys = _within(self.catalog.run_keys_named(name), within)
        if len(keys) > 1:
            raise Conflict(
                f"task {name!r} names runs in namespaces {', '.join(ns for ns, _ in keys)}",
                task_id=name,
            )
        return self.catalog.runs.get(keys[0]) if keys else None

    def batches(self, name: str, within: set[str] | None = None) -> list[PipelineBatch]:
        """The PipelineBatches of batch task ``name`` (one per namespace)."""
        keys = _within(self.catalog.batch_keys_named(name), within)
        return [self.catalog.batches[k] for k in keys]

    # writes ----------------------------------------------------------------------------------
    @abstractmethod
    async def create_run(self, namespace: str, manifest: Obj) -> PipelineRun:
        """Create a PipelineRun; returns the stored object (with its generated name)."""

    @abstractmethod
    async def create_batch(self, namespace: str, manifest: Obj) -> PipelineBatch:
        """Create a PipelineBatch; Conflict when its name is taken there."""

    @abstractmethod
    async def patch_run(self, run: PipelineRun, patch: Obj) -> PipelineRun:
        """JSON merge patch of a PipelineRun's spec/metadata (NotFound when it is gone)."""

    @abstractmethod
    async def patch_batch(self, batch: PipelineBatch, patch: Obj) -> PipelineBatch: ...

    @abstractmethod
    async def delete_run_job(self, run: PipelineRun) -> bool:
        """Delete the run's own Job (its ownerReference is the run; deleted with a uid
        precondition, propagation Background); False when there is none."""

    @abstractmethod
    async def connection_manifest(self, namespace: str, name: str) -> Obj | None:
        """The connection as stored (read from the apiserver: the catalog keeps a summary);
        None when it is gone. For pages that show it whole (the console), never a hot path."""

    @abstractmethod
    async def report(self, run: PipelineRun) -> str | None:
        """The run's report text (not kept in memory): read from the apiserver."""

    @abstractmethod
    async def kept_log(self, run: PipelineRun) -> KeptLog | None:
        """The runner's log kept with the run (not kept in memory): read from the apiserver."""

    @abstractmethod
    async def loaded_schema(self, run: PipelineRun) -> LoadedSchema | None:
        """The schema the run's runner reported (not kept in memory): read from the apiserver."""

    # waiting ---------------------------------------------------------------------------------
    async def wait_for_run_end(self, run: PipelineRun) -> PipelineRun | None:
        """Wait (on the watch, no polling) until the run is terminal; None if it was deleted."""
        current = self.catalog.runs.get((run.namespace, run.name), run)
        return await self.catalog.waiters.wait(current)

    def run_updates(self, run: PipelineRun) -> AsyncGenerator[PipelineRun, None]:
        """The run as cached now, then again each time it changes (fed by the watch, no
        polling). Ends after a terminal run, or when the run is deleted (so a last run that is
        not terminal means it was deleted). A consumer slower than the changes gets the newest
        state (intermediate ones coalesce), never a terminal one skipped. Close it
        (`contextlib.aclosing`) when leaving early."""
        current = self.catalog.runs.get((run.namespace, run.name), run)
        return self.catalog.waiters.updates(current)

    # helpers ---------------------------------------------------------------------------------
    def connection_lock(self, conn: ConnectionSummary) -> asyncio.Lock:
        """Serialises check-then-create for one connection inside this process."""
        lock = self._locks.get(conn.key)
        if lock is None:
            lock = self._locks[conn.key] = asyncio.Lock()
        return lock


def _within(keys: list[tuple[str, str]], namespaces: set[str] | None) -> list[tuple[str, str]]:
    return keys if namespaces is None else [k for k in keys if k[0] in namespaces]
