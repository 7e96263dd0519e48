"""What kopf's handlers reach through ``memo.ctx``: the controller, once the indexes exist."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Hashable

from datapipelines.resources.memory import freeze_long_lived

from . import events
from .archive import Archive
from .config import Settings
from .controller import Controller
from .kube import Kube
from .periodic import resync_forever
from .store import Store

log = logging.getLogger("datapipelines.operator")


class Runtime:
    def __init__(
        self,
        kube: Kube,
        settings: Settings,
        archive: Archive | None,
        in_shard: Callable[[str], bool] | None = None,
    ) -> None:
        self.kube = kube
        self.settings = settings
        self.archive = archive
        self.in_shard = in_shard
        self.controller: Controller | None = None
        self.synced = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def attach(self, store: Store) -> None:
        """kopf created the indexes: start the reconcile workers and the safety pass."""
        self.controller = Controller(
            self.kube, store, self.settings, self.archive, in_shard=self.in_shard
        )
        self.controller.queue.start()
        events.LAST_SUCCESS.store = store
        self._tasks.append(
            asyncio.create_task(
                resync_forever(self.controller, self.settings.sync_interval_seconds, self.synced),
                name="resync",
            )
        )
        self._tasks.append(asyncio.create_task(self._announce_in_sync(), name="in-sync"))

    async def _announce_in_sync(self) -> None:
        """Log once when everything seen at start-up has been reconciled (tests and operators
        wait for this line rather than for a fixed time)."""
        await self.synced.wait()
        assert self.controller is not None
        await self.controller.queue.drained()
        log.info("in sync: every object seen at start-up is reconciled")
        freeze_long_lived("operator indexes")

    def add(self, key: Hashable) -> None:
        """A watch event's key. kopf calls handlers only once every index is filled."""
        self.synced.set()
        if self.controller is not None:
            self.controller.add(key)

    async def stop(self) -> None:
        """Cancel all reconcile work at once (leadership lost, or shutting down)."""
        for task in self._tasks:
            task.cancel()
        events.LAST_SUCCESS.store = None
        if self.controller is not None:
            await self.controller.queue.stop()
