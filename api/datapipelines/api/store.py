"""The interface between the routes and Kubernetes: a read cache plus a few writes.

`KubeStore` (kube.py) implements it over a watch-fed cache and the apiserver; unit tests use an
in-memory fake through `app.dependency_overrides` (or `create_app(kube=…)`). Reads never do I/O;
writes are the only apiserver calls a request makes.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from typing import Any

from datapipelines.api.errors import KubeUnavailable

Obj = dict[str, Any]


class PipelineStore(ABC):
    """Connections, runs and batches of one namespace."""

    namespace: str

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}

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

    # reads (from the cache, no I/O) ----------------------------------------------------------
    @abstractmethod
    def connections(self) -> list[Obj]: ...

    @abstractmethod
    def connection(self, name: str) -> Obj | None: ...

    @abstractmethod
    def runs(self) -> list[Obj]: ...

    @abstractmethod
    def run(self, name: str) -> Obj | None: ...

    @abstractmethod
    def batch(self, name: str) -> Obj | None: ...

    # writes ----------------------------------------------------------------------------------
    @abstractmethod
    async def create_run(self, manifest: Obj) -> Obj:
        """Create a PipelineRun; returns the stored object (with its generated name)."""

    @abstractmethod
    async def create_batch(self, manifest: Obj) -> Obj: ...

    @abstractmethod
    async def patch_run(self, name: str, patch: Obj) -> Obj:
        """JSON merge patch of a PipelineRun (raises NotFound when it is gone)."""

    @abstractmethod
    async def patch_batch(self, name: str, patch: Obj) -> Obj: ...

    @abstractmethod
    async def delete_job(self, name: str) -> bool:
        """Delete a run's Job with propagation Background; False when there was none."""

    # waiting ---------------------------------------------------------------------------------
    @abstractmethod
    async def wait_for_run_end(self, name: str) -> Obj | None:
        """Wait (on the watch, no polling) until the run is terminal; None if it was deleted."""

    # helpers ---------------------------------------------------------------------------------
    def connection_lock(self, connection: str) -> asyncio.Lock:
        """Serialises check-then-create for one connection inside this process."""
        lock = self._locks.get(connection)
        if lock is None:
            lock = self._locks[connection] = asyncio.Lock()
        return lock
