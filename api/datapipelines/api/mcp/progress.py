"""MCP progress notifications while a tool waits for a run.

Each change of the run is sent as one notification whose message says the phase, stage,
records extracted and rows per table; the last one is sent again every `heartbeat` seconds so
an idle stream is not cut by a proxy or a client read timeout. MCP requires the progress value
to increase with every notification: it is the seconds elapsed since the tool call began
(no total; the message carries the meaning). A client that sent no progressToken gets none.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Self

from datapipelines.api.models import TaskStatusOut

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 15.0
Send = Callable[[float, str], Awaitable[None]]


def describe(status: TaskStatusOut) -> str:
    """One line for a person or an agent: `Running · load · 3000 records extracted · items 3000`."""
    parts = [status.phase or status.status]
    progress = status.progress
    if progress is not None:
        if progress.stage:
            parts.append(progress.stage)
        if progress.records_extracted is not None:
            parts.append(f"{progress.records_extracted} records extracted")
        tables = progress.tables or {}
        if tables:
            parts.append(", ".join(f"{table} {count}" for table, count in sorted(tables.items())))
    if status.attempts and status.attempts > 1:
        parts.append(f"attempt {status.attempts}")
    return f"{status.task_id}: " + " · ".join(parts)


class ProgressNotifier:
    """Use as `async with ProgressNotifier(send) as notify:` and pass `notify` as the hook."""

    def __init__(self, send: Send, *, heartbeat: float = HEARTBEAT_SECONDS) -> None:
        self._send = send
        self._heartbeat = heartbeat
        self._started = time.monotonic()
        self._progress = 0.0
        self._message: str | None = None
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    async def __call__(self, status: TaskStatusOut) -> None:
        await self._emit(describe(status))

    async def _emit(self, message: str) -> None:
        async with self._lock:
            elapsed = round(time.monotonic() - self._started, 3)
            self._progress = max(elapsed, self._progress + 0.001)
            self._message = message
            try:
                await self._send(self._progress, message)
            except Exception as exc:  # progress must never fail the tool call
                log.debug("progress notification not sent", extra={"error": repr(exc)})

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self._heartbeat)
            if self._message is not None:
                await self._emit(self._message)

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._beat(), name="mcp-progress-heartbeat")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
