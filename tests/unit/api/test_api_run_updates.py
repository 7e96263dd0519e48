"""Following a run: `RunWaiters.updates` (fed by the catalog), the watch cache's and the fake's
`run_updates`, `services.follow_run` and `services.run_and_follow` (what the MCP tools use for
progress)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator
from typing import Any

import pytest

from datapipelines.api import services
from datapipelines.api.access import KeyCaller
from datapipelines.api.cache import WatchCache
from datapipelines.api.catalog import RunWaiters
from datapipelines.api.errors import Conflict, Invalid, NotFound, RunVanished, WaitTimeout
from datapipelines.api.models import TaskStatusOut
from datapipelines.resources.run import PipelineRun
from tests.unit.api.fakekube import FakeStore
from tests.unit.api.test_api_cache import ScriptedApi, obj, page, until

EVERYONE = KeyCaller("key:test")


def run(name: str, rv: int, phase: str | None = None) -> PipelineRun:
    return PipelineRun.model_validate(obj(name, rv, phase))


async def collect(updates: AsyncGenerator[Any, None]) -> list[Any]:
    async with contextlib.aclosing(updates):
        return [item async for item in updates]


def phases(runs: list[PipelineRun]) -> list[str | None]:
    return [r.phase.value if r.phase else None for r in runs]


async def test_waiters_resolve_on_terminal_and_delete() -> None:
    waiters = RunWaiters()
    done = asyncio.create_task(waiters.wait(run("r1", 1, "Running")))
    gone = asyncio.create_task(waiters.wait(run("r2", 1)))
    await asyncio.sleep(0)
    assert len(waiters) == 2
    waiters.on_change("MODIFIED", run("r1", 2, "Running"))
    await asyncio.sleep(0)
    assert not done.done()
    waiters.on_change("MODIFIED", run("r1", 3, "Failed"))
    waiters.on_change("DELETED", run("r2", 4))
    assert phases([await done]) == ["Failed"]
    assert await gone is None
    assert len(waiters) == 0
    # already terminal or unknown: no waiting at all
    ended = await waiters.wait(run("x", 1, "Succeeded"))
    assert ended is not None and ended.name == "x"
    assert await waiters.wait(None) is None


async def test_waiters_key_runs_by_namespace_and_name() -> None:
    waiters = RunWaiters()
    mine = asyncio.create_task(waiters.wait(run("r", 1, "Running")))
    await asyncio.sleep(0)
    elsewhere = PipelineRun.model_validate(obj("r", 2, "Succeeded", ns="other"))
    waiters.on_change("MODIFIED", elsewhere)  # the same name in another namespace
    await asyncio.sleep(0)
    assert not mine.done()
    waiters.on_change("MODIFIED", run("r", 3, "Succeeded"))
    assert phases([await mine]) == ["Succeeded"]


async def test_cancelled_waiter_is_removed() -> None:
    waiters = RunWaiters()
    task = asyncio.create_task(waiters.wait(run("r", 1, "Queued")))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(waiters) == 0


async def test_waiters_updates_yield_now_then_each_change_until_terminal() -> None:
    waiters = RunWaiters()
    follower = asyncio.create_task(collect(waiters.updates(run("r", 1, "Queued"))))
    await asyncio.sleep(0)
    assert len(waiters) == 1
    waiters.on_change("MODIFIED", run("r", 2, "Running"))
    await asyncio.sleep(0.01)
    waiters.on_change("MODIFIED", run("other", 3, "Succeeded"))  # not ours
    waiters.on_change("MODIFIED", run("r", 4, "Succeeded"))
    runs = await asyncio.wait_for(follower, 1)
    assert phases(runs) == ["Queued", "Running", "Succeeded"]
    assert len(waiters) == 0


async def test_waiters_updates_coalesce_but_never_skip_the_end() -> None:
    waiters = RunWaiters()
    updates = waiters.updates(run("r", 1, "Queued"))
    assert phases([await anext(updates)]) == ["Queued"]
    # a slow consumer: three changes and a deletion before it reads again
    waiters.on_change("MODIFIED", run("r", 2, "Running"))
    waiters.on_change("MODIFIED", run("r", 3, "Running"))
    waiters.on_change("MODIFIED", run("r", 4, "Failed"))
    waiters.on_change("DELETED", run("r", 5, "Failed"))
    rest = await collect(updates)
    assert [r.metadata.resource_version for r in rest] == ["4"]
    assert len(waiters) == 0


async def test_waiters_updates_end_on_delete_and_for_unknown_or_ended_runs() -> None:
    waiters = RunWaiters()
    follower = asyncio.create_task(collect(waiters.updates(run("r", 1, "Running"))))
    await asyncio.sleep(0)
    waiters.on_change("DELETED", run("r", 2, "Running"))
    # the run as it was deleted comes last, not terminal: the sign it was deleted
    followed = await asyncio.wait_for(follower, 1)
    assert phases(followed) == ["Running", "Running"]
    assert [r.metadata.resource_version for r in followed] == ["1", "2"]
    assert await collect(waiters.updates(None)) == []
    assert phases(await collect(waiters.updates(run("y", 1, "Succeeded")))) == ["Succeeded"]
    assert len(waiters) == 0


async def test_waiters_updates_closed_early_unregister() -> None:
    waiters = RunWaiters()
    updates = waiters.updates(run("r", 1, "Running"))
    await anext(updates)
    assert len(waiters) == 1
    await updates.aclose()
    assert len(waiters) == 0
    waiters.on_change("MODIFIED", run("r", 2, "Succeeded"))  # nobody left to tell


async def test_watch_cache_run_updates_follow_the_watch() -> None:
    """The watches feed the catalog, the catalog its waiters: what KubeStore.run_updates uses."""
    api = ScriptedApi()
    cache = WatchCache(api, ["ns"], watch_timeout=30)
    api.lists.extend([page([], "1"), page([obj("r", 2, "Queued")], "2"), page([], "3")])
    cache.start()
    try:
        await until(lambda: cache.readiness()[0])
        runs = cache.watch_for("pipelineruns", "ns")
        current = cache.catalog.runs[("ns", "r")]
        follower = asyncio.create_task(collect(cache.catalog.waiters.updates(current)))
        await until(lambda: len(cache.catalog.waiters) == 1)
        runs.handle_event({"type": "MODIFIED", "object": obj("r", 5, "Running")})
        await asyncio.sleep(0.01)
        runs.handle_event({"type": "MODIFIED", "object": obj("r", 6, "Succeeded")})
        assert phases(await asyncio.wait_for(follower, 1)) == ["Queued", "Running", "Succeeded"]
    finally:
        await cache.stop()


async def test_fake_store_run_updates() -> None:
    fake = FakeStore()
    fake.add_connection("alpha")
    fake.add_run("alpha-1", "alpha", "Queued")
    current = fake.run("alpha-1")
    assert current is not None
    follower = asyncio.create_task(collect(fake.run_updates(current)))
    await asyncio.sleep(0)
    fake.update_run_status("alpha-1", phase="Running")
    await asyncio.sleep(0.01)
    fake.finish_run("alpha-1")
    assert phases(await asyncio.wait_for(follower, 1))[-1] == "Succeeded"


async def test_follow_run_yields_task_statuses() -> None:
    fake = FakeStore()
    fake.add_connection("alpha")
    fake.add_run("alpha-1", "alpha", "Queued")
    seen: list[TaskStatusOut] = []

    async def follow() -> None:
        async with contextlib.aclosing(
            services.follow_run(fake, "alpha-1", caller=EVERYONE)
        ) as updates:
            async for status in updates:
                seen.append(status.model_copy(deep=True))

    follower = asyncio.create_task(follow())
    await asyncio.sleep(0.01)
    fake.update_run_status(
        "alpha-1", phase="Running", progress={"stage": "extract", "recordsExtracted": 7}
    )
    await asyncio.sleep(0.01)
    fake.finish_run("alpha-1", rowsInserted=7)
    await asyncio.wait_for(follower, 1)
    assert [s.status for s in seen] == ["queued", "running", "finished"]
    assert seen[1].progress is not None and seen[1].progress.records_extracted == 7
    assert seen[-1].result is not None and seen[-1].result.rows_inserted == 7


async def test_follow_run_errors() -> None:
    fake = FakeStore()
    fake.add_connection("alpha")
    fake.add_batch("batch-1", ["alpha"])
    with pytest.raises(NotFound, match="task 'nope' not found"):
        await collect(services.follow_run(fake, "nope", caller=EVERYONE))
    with pytest.raises(Invalid, match="is a batch"):
        await collect(services.follow_run(fake, "batch-1", caller=EVERYONE))
    fake.add_run("alpha-1", "alpha", "Running")
    follower = asyncio.create_task(collect(services.follow_run(fake, "alpha-1", caller=EVERYONE)))
    await asyncio.sleep(0)
    fake.delete_run("alpha-1")
    with pytest.raises(RunVanished, match="deleted before it finished"):
        await asyncio.wait_for(follower, 1)


async def test_run_and_follow_reports_updates_and_returns_the_run_result() -> None:
    fake = FakeStore()
    fake.add_connection("alpha")
    loop = asyncio.get_running_loop()

    def script(run: dict[str, Any]) -> None:
        name = run["metadata"]["name"]
        loop.call_later(0.01, lambda: fake.update_run_status(name, phase="Running"))
        loop.call_later(
            0.02,
            lambda: fake.update_run_status(
                name, progress={"stage": "load", "recordsExtracted": 3, "tables": {"items": 3}}
            ),
        )
        loop.call_later(0.03, lambda: fake.finish_run(name, rowsInserted=3))

    fake.on_create_run = script
    updates: list[str] = []

    async def on_update(status: TaskStatusOut) -> None:
        updates.append(status.phase or "")

    result = await services.run_and_follow(
        fake, "alpha", caller=EVERYONE, include_report=False, wait_seconds=None, on_update=on_update
    )
    assert result.success is True and result.rows_inserted == 3 and result.report is None
    assert updates[0] == "Queued" and "Running" in updates and "Succeeded" not in updates
    # the same body as the REST run: include_report gives the report
    fake.on_create_run = lambda run: loop.call_soon(fake.finish_run, run["metadata"]["name"])
    result = await services.run_and_follow(
        fake, "alpha", caller=EVERYONE, include_report=True, wait_seconds=None, on_update=on_update
    )
    assert result.report == "loaded 10 rows" and result.report_truncated is False


async def test_run_and_follow_errors() -> None:
    fake = FakeStore()
    fake.add_connection("alpha")
    fake.add_run("alpha-active", "alpha", "Running")

    async def ignore(status: TaskStatusOut) -> None:
        return None

    with pytest.raises(Conflict, match="alpha-active"):
        await services.run_and_follow(
            fake,
            "alpha",
            caller=EVERYONE,
            include_report=False,
            wait_seconds=None,
            on_update=ignore,
        )
    with pytest.raises(NotFound, match="connection 'nope' not found"):
        await services.run_and_follow(
            fake, "nope", caller=EVERYONE, include_report=False, wait_seconds=None, on_update=ignore
        )
    fake.finish_run("alpha-active")
    with pytest.raises(WaitTimeout, match="has not finished after 1 s"):
        await services.run_and_follow(
            fake, "alpha", caller=EVERYONE, include_report=False, wait_seconds=1, on_update=ignore
        )
