"""The watch cache against a scripted apiserver: list, watch, 410, errors, waiters."""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio.client.exceptions import ApiException

from datapipelines.api.cache import Backoff, ResourceWatch, RunWaiters, WatchCache, rv_newer


def obj(name: str, rv: int, phase: str | None = None) -> dict[str, Any]:
    o: dict[str, Any] = {"metadata": {"name": name, "resourceVersion": str(rv)}, "spec": {}}
    if phase:
        o["status"] = {"phase": phase}
    return o


def event(kind: str, o: dict[str, Any]) -> bytes:
    return json.dumps({"type": kind, "object": o}).encode() + b"\n"


class _Content:
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    async def iter_any(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            await asyncio.sleep(0)
            yield chunk


class _Resp:
    def __init__(self, chunks: list[bytes], status: int = 200) -> None:
        self.content = _Content(chunks)
        self.status = status
        self.released = False

    async def read(self) -> bytes:
        return b"".join(self.content.chunks)

    def release(self) -> None:
        self.released = True


class ScriptedApi:
    """Lists and watches answer from queues; an empty watch queue blocks like a quiet watch."""

    def __init__(self) -> None:
        self.lists: deque[Any] = deque()
        self.watches: deque[Any] = deque()
        self.calls: list[dict[str, Any]] = []

    async def list_namespaced_custom_object(
        self, group: str, version: str, namespace: str, plural: str, **kw: Any
    ) -> Any:
        self.calls.append(kw)
        queue = self.watches if kw.get("watch") else self.lists
        while not queue:  # noqa: ASYNC110 - a test double, polling is fine
            await asyncio.sleep(0.005)
        item = queue.popleft()
        if isinstance(item, BaseException):
            raise item
        if isinstance(item, _Resp):
            return item
        return _Resp(item) if kw.get("watch") else item


def page(items: list[dict[str, Any]], rv: str, cont: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"resourceVersion": rv}
    if cont:
        meta["continue"] = cont
    return {"items": items, "metadata": meta}


async def until(cond: Callable[[], bool], within: float = 3.0) -> None:
    async with asyncio.timeout(within):
        while not cond():  # noqa: ASYNC110 - test helper
            await asyncio.sleep(0.005)


@pytest.fixture
def api() -> ScriptedApi:
    return ScriptedApi()


def make_watch(api: ScriptedApi, **kw: Any) -> ResourceWatch:
    return ResourceWatch(api, "ns", "pipelineruns", backoff=Backoff(0.01, 0.02), **kw)


async def test_list_paginates_then_watches_from_its_rv(api: ScriptedApi) -> None:
    api.lists.extend([page([obj("a", 1)], "5", cont="tok"), page([obj("b", 2)], "10")])
    w = make_watch(api)
    task = asyncio.create_task(w.run())
    try:
        await until(lambda: w.synced)
        assert set(w.objects) == {"a", "b"} and w.resource_version == "10"
        assert api.calls[1]["_continue"] == "tok"
        await until(lambda: any(c.get("watch") for c in api.calls))
        watch_call = next(c for c in api.calls if c.get("watch"))
        assert watch_call["resource_version"] == "10"
        assert watch_call["allow_watch_bookmarks"] is True
        assert watch_call["timeout_seconds"] == 300
    finally:
        task.cancel()


async def test_events_bookmarks_and_resume(api: ScriptedApi) -> None:
    api.lists.append(page([obj("a", 1)], "1"))
    a2 = event("MODIFIED", obj("a", 3))
    api.watches.append(
        [
            event("ADDED", obj("b", 2)),
            a2[:10],  # an event split over two chunks
            a2[10:],
            event("DELETED", obj("b", 4)),
            json.dumps(
                {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "9"}}}
            ).encode()
            + b"\n",
        ]
    )
    w = make_watch(api)
    task = asyncio.create_task(w.run())
    try:
        await until(lambda: w.resource_version == "9")
        assert set(w.objects) == {"a"} and w.objects["a"]["metadata"]["resourceVersion"] == "3"
        # the server ended the watch: it resumes from the bookmark, without a new list
        await until(lambda: sum(1 for c in api.calls if c.get("watch")) == 2)
        assert api.calls[-1]["resource_version"] == "9"
        assert sum(1 for c in api.calls if not c.get("watch")) == 1
        assert w.synced
    finally:
        task.cancel()


async def test_gone_relists(api: ScriptedApi) -> None:
    api.lists.extend([page([obj("a", 1), obj("b", 2)], "2"), page([obj("a", 7)], "8")])
    gone = {"type": "ERROR", "object": {"kind": "Status", "code": 410, "message": "too old"}}
    api.watches.append([json.dumps(gone).encode() + b"\n"])
    seen: list[tuple[str, str]] = []
    w = make_watch(api, on_change=lambda kind, o: seen.append((kind, o["metadata"]["name"])))
    task = asyncio.create_task(w.run())
    try:
        await until(lambda: w.lists == 2)
        assert set(w.objects) == {"a"} and w.resource_version == "8"
        assert ("DELETED", "b") in seen and ("MODIFIED", "a") in seen
    finally:
        task.cancel()


async def test_connection_errors_mark_unsynced_then_recover(api: ScriptedApi) -> None:
    api.lists.extend(
        [
            aiohttp.ClientConnectionError("refused"),
            ApiException(status=503, reason="down"),
            page([obj("a", 1)], "1"),
        ]
    )
    w = make_watch(api)
    assert not w.synced
    task = asyncio.create_task(w.run())
    try:
        await until(lambda: len(api.calls) >= 1)
        await until(lambda: w.synced)
        assert w.objects.keys() == {"a"}
        api.watches.append(OSError("connection reset"))
        await until(lambda: not w.synced)
        assert "connection reset" in (w.last_error or "")
        api.watches.append([event("ADDED", obj("c", 2))])
        await until(lambda: "c" in w.objects)
        assert w.synced
    finally:
        task.cancel()


async def test_local_writes_survive_an_older_snapshot(api: ScriptedApi) -> None:
    w = make_watch(api)
    w.apply_local(obj("mine", 50))
    api.lists.append(page([obj("other", 3)], "40"))  # taken before our create
    await w.list_once()
    assert set(w.objects) == {"mine", "other"}
    api.lists.append(page([obj("other", 3)], "60"))  # after: it is really gone
    await w.list_once()
    assert set(w.objects) == {"other"}


def test_apply_local_keeps_newer_watch_state() -> None:
    w = ResourceWatch(ScriptedApi(), "ns", "pipelineruns")
    w.handle_event({"type": "MODIFIED", "object": obj("r", 9, "Running")})
    w.apply_local(obj("r", 8))
    assert w.objects["r"]["status"]["phase"] == "Running"
    w.apply_local(obj("r", 10, "Succeeded"))
    assert w.objects["r"]["status"]["phase"] == "Succeeded"


def test_rv_newer() -> None:
    assert rv_newer("10", "9") and not rv_newer("9", "10") and rv_newer("1", None)
    assert rv_newer("abc", "def")


async def test_waiters_resolve_on_terminal_and_delete() -> None:
    waiters = RunWaiters()
    done = asyncio.create_task(waiters.wait("r1", obj("r1", 1, "Running")))
    gone = asyncio.create_task(waiters.wait("r2", obj("r2", 1)))
    await asyncio.sleep(0)
    assert len(waiters) == 2
    waiters.on_change("MODIFIED", obj("r1", 2, "Running"))
    await asyncio.sleep(0)
    assert not done.done()
    waiters.on_change("MODIFIED", obj("r1", 3, "Failed"))
    waiters.on_change("DELETED", obj("r2", 4))
    assert (await done)["status"]["phase"] == "Failed"
    assert await gone is None
    assert len(waiters) == 0
    # already terminal or unknown: no waiting at all
    assert (await waiters.wait("x", obj("x", 1, "Succeeded")))["metadata"]["name"] == "x"
    assert await waiters.wait("y", None) is None


async def test_cancelled_waiter_is_removed() -> None:
    waiters = RunWaiters()
    task = asyncio.create_task(waiters.wait("r", obj("r", 1, "Queued")))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(waiters) == 0


async def test_watch_cache_readiness_and_run_end(api: ScriptedApi) -> None:
    # three resources list in turn; the runs watch later reports the run's end
    cache = WatchCache(api, "ns", watch_timeout=30)
    assert cache.readiness()[0] is False
    for w in cache.watches:
        w._backoff = Backoff(0.01, 0.02)
    api.lists.extend([page([], "1"), page([obj("r", 2, "Running")], "2"), page([], "3")])
    cache.start()
    try:
        await until(lambda: cache.readiness()[0])
        waiting = asyncio.create_task(cache.wait_for_run_end("r"))
        await asyncio.sleep(0.02)
        assert not waiting.done()
        cache.runs.handle_event({"type": "MODIFIED", "object": obj("r", 5, "Succeeded")})
        assert (await asyncio.wait_for(waiting, 1))["status"]["phase"] == "Succeeded"
    finally:
        await cache.stop()


async def test_watch_http_errors(api: ScriptedApi) -> None:
    api.lists.extend([page([obj("a", 1)], "1"), page([obj("b", 2)], "2")])
    api.watches.extend([_Resp([b"forbidden"], status=403), _Resp([b"gone"], status=410)])
    w = make_watch(api)
    task = asyncio.create_task(w.run())
    try:
        await until(lambda: w.lists == 2)  # 403: retried; 410: listed again
        assert set(w.objects) == {"b"}
    finally:
        task.cancel()
