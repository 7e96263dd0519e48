"""The safety pass: every ``DATAPIPELINES_SYNC_INTERVAL_SECONDS`` each connection and each batch
is queued again from the index (never a LIST), at low priority (behind every event's key), so a
missed watch event can delay a decision by at most one interval. Schedules and deadlines need
no pass: a reconcile asks to come back at the next tick or deadline itself."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from .controller import Controller

log = logging.getLogger(__name__)


async def resync_forever(controller: Controller, interval: float, synced: asyncio.Event) -> None:
    await synced.wait()  # never act on a half-filled index
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.sleep(interval)
        try:
            count = controller.resync()
            log.debug("resync: %d key(s) queued", count)
        except Exception:
            log.exception("resync failed")
