"""WorkQueue: one reconcile per key at a time, coalescing, requeue after a delay, error backoff,
stop. Event-driven: every wait is for something that must happen (with a timeout)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from datapipelines.operator.workqueue import WorkQueue

WAIT = 2.0  # seconds a positive expectation may take, at most


@asynccontextmanager
async def running(
    reconcile: Callable[[Any], Awaitable[float | None]], **kwargs: Any
) -> AsyncIterator[WorkQueue]:
    queue = WorkQueue(reconcile, **kwargs)
    queue.start()
    try:
        yield queue
    finally:
        await queue.stop()


async def drained(queue: WorkQueue) -> None:
    await asyncio.wait_for(queue.drained(), WAIT)


async def test_repeated_adds_before_a_worker_takes_the_key_coalesce() -> None:
    calls: list[str] = []

    async def reconcile(key: str) -> None:
        calls.append(key)

    queue = WorkQueue(reconcile, workers=2)
    for _ in range(3):
        queue.add("k")
    queue.add("other")
    assert len(queue) == 2
    queue.start()
    try:
        await drained(queue)
    finally:
        await queue.stop()
    assert sorted(calls) == ["k", "other"]
    assert queue.reconciles == 2 and len(queue) == 0


async def test_a_key_added_while_reconciled_runs_once_more_afterwards() -> None:
    calls: list[str] = []
    entered, release = asyncio.Event(), asyncio.Event()

    async def reconcile(key: str) -> None:
        calls.append(key)
        if len(calls) == 1:
            entered.set()
            await release.wait()

    async with running(reconcile, workers=4) as queue:
        queue.add("k")
        await asyncio.wait_for(entered.wait(), WAIT)
        for _ in range(3):
            queue.add("k")  # all three coalesce into one more run
        release.set()
        await drained(queue)
    assert calls == ["k", "k"]


async def test_one_worker_per_key_while_other_keys_run_in_parallel() -> None:
    active: dict[str, int] = {}
    most: dict[str, int] = {}
    k_started, other_done, finished = asyncio.Event(), asyncio.Event(), asyncio.Event()
    runs = {"k": 0}

    async def reconcile(key: str) -> None:
        active[key] = active.get(key, 0) + 1
        most[key] = max(most.get(key, 0), active[key])
        try:
            if key == "k":
                runs["k"] += 1
                if runs["k"] == 1:
                    k_started.set()
                    await other_done.wait()  # another key finishes while k is busy
                else:
                    finished.set()
            else:
                other_done.set()
        finally:
            active[key] -= 1

    async with running(reconcile, workers=4) as queue:
        queue.add("k")
        await asyncio.wait_for(k_started.wait(), WAIT)
        queue.add("k")
        queue.add("k")
        queue.add("j")
        await asyncio.wait_for(finished.wait(), WAIT)
        await drained(queue)
    assert most == {"k": 1, "j": 1}
    assert runs["k"] == 2


async def test_a_reconcile_asks_to_come_back_later() -> None:
    calls: list[float | None] = []
    done = asyncio.Event()

    async def reconcile(key: str) -> float | None:
        calls.append(None)
        if len(calls) == 1:
            return 0.01
        done.set()
        return None

    async with running(reconcile) as queue:
        queue.add("k")
        await asyncio.wait_for(done.wait(), WAIT)
    assert len(calls) == 2


async def test_add_after_the_earliest_request_wins() -> None:
    ran = asyncio.Event()
    calls: list[str] = []

    async def reconcile(key: str) -> None:
        calls.append(key)
        ran.set()

    async with running(reconcile) as queue:
        queue.add_after("k", 30)
        queue.add_after("k", 0.01)  # earlier: replaces the 30 s request
        await asyncio.wait_for(ran.wait(), WAIT)
        await drained(queue)
        assert calls == ["k"]
        assert queue._delayed_at == {}  # the superseded 30 s request will not run it again

        ran.clear()
        queue.add_after("j", 0.01)
        queue.add_after("j", 30)  # later: ignored
        await asyncio.wait_for(ran.wait(), WAIT)
        assert calls == ["k", "j"]
        assert queue._delayed_at == {}


async def test_add_after_zero_is_now() -> None:
    ran = asyncio.Event()

    async def reconcile(key: str) -> None:
        ran.set()

    async with running(reconcile) as queue:
        queue.add_after("k", 0)
        assert len(queue) == 1
        await asyncio.wait_for(ran.wait(), WAIT)


async def test_errors_are_retried_after_the_backoff() -> None:
    calls: list[str] = []
    succeeded = asyncio.Event()

    async def reconcile(key: str) -> None:
        calls.append(key)
        if len(calls) < 3:
            raise RuntimeError("apiserver hiccup")
        succeeded.set()

    async with running(reconcile, error_backoff=0.01) as queue:
        queue.add("k")
        await asyncio.wait_for(succeeded.wait(), WAIT)
        assert queue.errors == 2 and queue.reconciles == 1
    assert calls == ["k", "k", "k"]


def test_a_key_that_keeps_failing_backs_off_exponentially_up_to_a_cap() -> None:
    async def reconcile(key: str) -> None:
        return None

    queue = WorkQueue(reconcile, error_backoff=5.0, max_error_backoff=300.0)
    assert [queue.backoff("k") for _ in range(9)] == [5, 10, 20, 40, 80, 160, 300, 300, 300]
    assert queue.backoff("other") == 5
    queue.forget("k")
    assert queue.backoff("k") == 5


async def test_failures_are_reported_and_reset_by_a_success() -> None:
    told: list[tuple[str, int, str]] = []
    succeeded = asyncio.Event()

    async def reconcile(key: str) -> None:
        if len(told) < 2:
            raise RecursionError("a crafted termination message")
        succeeded.set()

    def on_failure(key: str, count: int, error: BaseException) -> None:
        told.append((key, count, type(error).__name__))

    async with running(reconcile, error_backoff=0.01, on_failure=on_failure) as queue:
        queue.add("k")
        await asyncio.wait_for(succeeded.wait(), WAIT)
        await queue.drained()
        assert told == [("k", 1, "RecursionError"), ("k", 2, "RecursionError")]
        assert queue.failures == {}


async def test_stop_cancels_a_reconcile_in_progress() -> None:
    entered = asyncio.Event()
    cancelled: list[bool] = []

    async def reconcile(key: str) -> None:
        entered.set()
        try:
            await asyncio.Event().wait()  # forever
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    queue = WorkQueue(reconcile, workers=2)
    queue.start()
    queue.add("k")
    queue.add_after("later", 30)
    await asyncio.wait_for(entered.wait(), WAIT)
    await asyncio.wait_for(queue.stop(), WAIT)
    assert cancelled == [True]
    assert queue.reconciles == 0 and queue.errors == 0
    assert queue._tasks == []


async def test_low_priority_keys_wait_behind_every_other_key_and_an_event_promotes_one() -> None:
    calls: list[str] = []

    async def reconcile(key: str) -> None:
        calls.append(key)

    queue = WorkQueue(reconcile, workers=1)
    for i in range(5):
        queue.add(f"resync-{i}", low=True)
    queue.add("event")
    queue.add("resync-3")  # an event for a key the safety pass queued: promoted
    queue.add("resync-1", low=True)  # already queued: stays where it is
    assert len(queue) == 6
    queue.start()
    try:
        await drained(queue)
    finally:
        await queue.stop()
    assert calls == ["event", "resync-3", "resync-0", "resync-1", "resync-2", "resync-4"]
    assert len(queue) == 0


async def test_a_key_added_while_a_low_batch_runs_goes_next() -> None:
    calls: list[str] = []
    first = asyncio.Event()
    release = asyncio.Event()

    async def reconcile(key: str) -> None:
        calls.append(key)
        if key == "resync-0":
            first.set()
            await release.wait()

    async with running(reconcile, workers=1) as queue:
        for i in range(3):
            queue.add(f"resync-{i}", low=True)
        await asyncio.wait_for(first.wait(), WAIT)
        queue.add("new-run")
        release.set()
        await drained(queue)
    assert calls == ["resync-0", "new-run", "resync-1", "resync-2"]
