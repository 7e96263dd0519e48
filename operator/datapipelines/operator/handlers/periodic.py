"""One background loop per operator instead of per-object kopf timers.

kopf timers put a finalizer on every object they watch, which would block deleting runs
and connections while the operator is down. This loop needs none:

* every ``DATAPIPELINES_SYNC_INTERVAL_SECONDS``: re-check every active run against its Job
  (a safety net for missed watch events: no run stays Running unobserved);
* every ``DATAPIPELINES_SCHEDULE_INTERVAL_SECONDS``: make the runs of due schedule ticks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from datapipelines.resources import CONNECTION_PLURAL, RUN_PLURAL
from datapipelines.resources.models import is_terminal

from ..context import Context
from .connections import on_schedule_timer
from .runs import sync_run

log = logging.getLogger(__name__)


async def sync_active_runs(ctx: Context) -> None:
    for run in await ctx.kube.list_objects(ctx.namespace, RUN_PLURAL):
        if is_terminal((run.get("status") or {}).get("phase")):
            continue
        try:
            await sync_run(ctx, ctx.namespace, run["metadata"]["name"])
        except Exception:
            log.exception("periodic sync of run %s failed", run["metadata"]["name"])


async def tick_schedules(ctx: Context) -> None:
    for conn in await ctx.kube.list_objects(ctx.namespace, CONNECTION_PLURAL):
        if not (conn.get("spec") or {}).get("schedule"):
            continue
        try:
            await on_schedule_timer(ctx, conn)
        except Exception:
            log.exception("schedule of %s failed", conn["metadata"]["name"])


async def periodic(ctx: Context, stop: asyncio.Event) -> None:
    sync_every = ctx.settings.sync_interval_seconds
    schedule_every = ctx.settings.schedule_interval_seconds
    last_sync = last_schedule = time.monotonic()  # kopf's resume handlers cover the start
    while not stop.is_set():
        now = time.monotonic()
        try:
            if now - last_schedule >= schedule_every:
                last_schedule = now
                await tick_schedules(ctx)
            if now - last_sync >= sync_every:
                last_sync = now
                await sync_active_runs(ctx)
        except Exception:
            log.exception("periodic pass failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=min(sync_every, schedule_every, 5.0))
