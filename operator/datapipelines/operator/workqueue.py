"""A keyed work queue, as controller-runtime's: every event maps to a key, each key is
reconciled by one worker at a time, keys added while queued are coalesced, keys added while
being reconciled are reconciled once more afterwards, and a reconcile may ask to come back
after a delay. Cancelling the queue (``stop``) ends every worker at once.

Two priorities, as controller-runtime's priority queue: keys added ``low`` (the periodic safety
pass: every connection of the shard at once) wait behind every key an event, a timer or another
reconcile added, so a new run is dispatched in the time its own reconcile takes, not after
thousands of no-op ones. A low key that an event adds again is promoted.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

log = logging.getLogger(__name__)

# controller-runtime's work-queue metrics, under the project's prefix (label `name`: the queue)
_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60, 300)
QUEUE_DEPTH = Gauge(
    "datapipelines_operator_workqueue_depth", "Keys waiting in the work queue.", ["name"]
)
QUEUE_ADDS = Counter(
    "datapipelines_operator_workqueue_adds_total", "Keys added to the work queue.", ["name"]
)
QUEUE_WAIT = Histogram(
    "datapipelines_operator_workqueue_queue_duration_seconds",
    "How long a key waited in the queue before a worker took it.",
    ["name"],
    buckets=_BUCKETS,
)
QUEUE_WORK = Histogram(
    "datapipelines_operator_workqueue_work_duration_seconds",
    "How long one reconcile of a key took.",
    ["name"],
    buckets=_BUCKETS,
)
QUEUE_RETRIES = Counter(
    "datapipelines_operator_workqueue_retries_total",
    "Reconciles that failed and were scheduled again with a backoff.",
    ["name"],
)

Reconcile = Callable[[Any], Awaitable[float | None]]
"""Reconcile one key; returns seconds until it wants to run again (None: only on events)."""
OnFailure = Callable[[Any, int, BaseException], None]
"""Told of every failed reconcile: the key, its consecutive failures, the error."""

#: The longest wait between two tries of a key that keeps failing (controller-runtime: 1000 s).
MAX_ERROR_BACKOFF = 300.0


class WorkQueue:
    def __init__(
        self,
        reconcile: Reconcile,
        *,
        workers: int = 8,
        error_backoff: float = 5.0,
        max_error_backoff: float = MAX_ERROR_BACKOFF,
        on_failure: OnFailure | None = None,
        name: str = "reconcile",
    ):
        self._reconcile = reconcile
        self._depth = QUEUE_DEPTH.labels(name)
        self._adds = QUEUE_ADDS.labels(name)
        self._wait = QUEUE_WAIT.labels(name)
        self._work = QUEUE_WORK.labels(name)
        self._retries = QUEUE_RETRIES.labels(name)
        self._added_at: dict[Hashable, float] = {}
        self._workers = workers
        self._error_backoff = error_backoff
        self._max_error_backoff = max_error_backoff
        self._on_failure = on_failure
        #: Consecutive failures per key: a key that keeps failing backs off exponentially
        #: (error_backoff * 2^(n-1), at most max_error_backoff) instead of looping.
        self.failures: dict[Hashable, int] = {}
        self._high: deque[Hashable] = deque()
        self._low: deque[Hashable] = deque()  # may hold promoted keys: skipped when taken
        self._queued: dict[Hashable, bool] = {}  # key -> queued at low priority
        self._has_work = asyncio.Event()
        self._active: set[Hashable] = set()
        self._dirty: set[Hashable] = set()
        self._delayed: list[tuple[float, int, Hashable]] = []
        self._delayed_at: dict[Hashable, float] = {}
        self._counter = 0
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._tasks: list[asyncio.Task[None]] = []
        self.reconciles = 0
        self.errors = 0

    # ------------------------------------------------------------------ adding keys

    def add(self, key: Hashable, *, low: bool = False) -> None:
        """Reconcile ``key`` soon (once, however often it is added before a worker takes it);
        ``low``: after every key of normal priority."""
        if key in self._active:
            self._dirty.add(key)
            return
        queued_low = self._queued.get(key)
        if queued_low is None:
            self._queued[key] = low
            (self._low if low else self._high).append(key)
            self._added_at[key] = time.monotonic()
            self._adds.inc()
            self._depth.set(len(self._queued))
        elif queued_low and not low:  # promoted: its place in the low deque is skipped
            self._queued[key] = False
            self._high.append(key)
        else:
            return
        self._idle.clear()
        self._has_work.set()

    def _take(self) -> Hashable | None:
        """The next key: normal priority first."""
        if self._high:
            return self._taken(self._high.popleft())
        while self._low:
            key = self._low.popleft()
            if self._queued.get(key) is True:
                return self._taken(key)
        return None

    def _taken(self, key: Hashable) -> Hashable:
        del self._queued[key]
        self._depth.set(len(self._queued))
        added = self._added_at.pop(key, None)
        if added is not None:
            self._wait.observe(time.monotonic() - added)
        return key

    async def _next(self) -> Hashable:
        while True:
            key = self._take()
            if key is not None:
                return key
            self._has_work.clear()
            await self._has_work.wait()

    def add_after(self, key: Hashable, seconds: float) -> None:
        """Reconcile ``key`` in ``seconds`` (the earliest of several requests wins)."""
        if seconds <= 0:
            self.add(key)
            return
        due = time.monotonic() + seconds
        if self._delayed_at.get(key, float("inf")) <= due:
            return
        self._delayed_at[key] = due
        self._counter += 1
        heapq.heappush(self._delayed, (due, self._counter, key))
        self._wakeup.set()

    def backoff(self, key: Hashable) -> float:
        """Count one more failure of ``key``; the seconds until it is tried again."""
        count = self.failures.get(key, 0) + 1
        self.failures[key] = count
        return min(self._error_backoff * 2 ** min(count - 1, 30), self._max_error_backoff)

    def forget(self, key: Hashable) -> None:
        """Drop what the queue remembers of ``key`` (its object is gone)."""
        self.failures.pop(key, None)

    def __len__(self) -> int:
        return len(self._queued) + len(self._active)

    async def drained(self) -> None:
        """Returns once no key is queued or being reconciled (delayed keys do not count)."""
        await self._idle.wait()

    # ------------------------------------------------------------------ running

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._worker(i), name=f"reconcile-{i}")
            for i in range(self._workers)
        ]
        self._tasks.append(asyncio.create_task(self._timer(), name="reconcile-timer"))

    async def stop(self) -> None:
        """Cancel every worker now (a reconcile in progress is interrupted)."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()

    async def _timer(self) -> None:
        while True:
            now = time.monotonic()
            while self._delayed and self._delayed[0][0] <= now:
                due, _, key = heapq.heappop(self._delayed)
                if self._delayed_at.get(key) == due:
                    del self._delayed_at[key]
                    self.add(key)
            timeout = self._delayed[0][0] - now if self._delayed else None
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout)

    async def _worker(self, index: int) -> None:
        while True:
            key = await self._next()
            self._active.add(key)
            again: float | None = None
            began = time.monotonic()
            try:
                again = await self._reconcile(key)
                self.reconciles += 1
                self.failures.pop(key, None)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                self.errors += 1
                self._retries.inc()
                again = self.backoff(key)
                log.exception(
                    "reconcile of %s failed (%d in a row); retrying in %.0f s",
                    key,
                    self.failures[key],
                    again,
                )
                if self._on_failure is not None:
                    with contextlib.suppress(Exception):
                        self._on_failure(key, self.failures[key], error)
            finally:
                self._active.discard(key)
                self._work.observe(time.monotonic() - began)
            if key in self._dirty:
                self._dirty.discard(key)
                self.add(key)
            if again is not None:
                self.add_after(key, again)
            if not self._queued and not self._active:
                self._idle.set()
