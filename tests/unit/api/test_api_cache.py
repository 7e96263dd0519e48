"""The watches against a scripted apiserver: list, watch, 410, errors, read-your-writes, each
`ResourceWatch` feeding a `Catalog`; `WatchCache`'s watches per namespace or cluster-wide."""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest

from datapipelines.api.apiserver import ApiServerError
from datapipelines.api.cache import Backoff, ResourceWatch, WatchCache, rv_newer
from datapipelines.api.catalog import Catalog
from datapipelines.api.metrics import Metrics
from datapipelines.resources import API_VERSION, RUN_KIND

RUNS = "pipelineruns"


def obj(name: str, rv: int, phase: str | None = None, ns: str = "ns") -> dict[str, Any]:
    """A PipelineRun of connection `c` as the apiserver would list it."""
    o: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": RUN_KIND,
        "metadata": {
            "name": name,
            "namespace": ns,
            "resourceVersion": str(rv),
            "labels": {"datapipelines.io/connection": "c"},
        },
        "spec": {"connectionName": "c", "trigger": "api"},
    }
    if phase:
        o["status"] = {"phase": phase}
    return o


def event(kind: str, o: dict[str, Any]) -> bytes:
    return json.dumps({"type": kind, "object": o}).encode() + b"\n"


class _Resp:
    """A watch response: its body's chunks and status."""

    def __init__(self, chunks: list[bytes], status: int = 200) -> None:
        self.chunks = chunks
        self.status = status

    async def iter_any(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            await asyncio.sleep(0)
            yield chunk


class ScriptedApi:
    """The apiserver client's `get` (lists) and `stream` (watches) answer from queues; an
    empty watch queue blocks like a quiet watch. Calls are recorded with their query params
    and scope (`namespace`, None = all namespaces) and plural, parsed from the path."""

    def __init__(self) -> None:
        self.lists: deque[Any] = deque()
        self.watches: deque[Any] = deque()
        self.calls: list[dict[str, Any]] = []

    async def _answer(self, path: str, params: Any) -> Any:
        parts = path.strip("/").split("/")  # apis/<group>/<version>[/namespaces/<ns>]/<plural>
        scope = parts[4] if len(parts) > 4 and parts[3] == "namespaces" else None
        self.calls.append({**(params or {}), "namespace": scope, "plural": parts[-1]})
        queue = self.watches if (params or {}).get("watch") else self.lists
        while not queue:  # noqa: ASYNC110 - a test double, polling is fine
            await asyncio.sleep(0.005)
        item = queue.popleft()
        if isinstance(item, BaseException):
            raise item
        return item

    async def get(self, path: str, params: Any = None, **kw: Any) -> Any:
        return await self._answer(path, params)

    @asynccontextmanager
    async def stream(self, path: str, params: Any, deadline: Any) -> AsyncIterator[Any]:
        item = await self._answer(path, params)
        resp = item if isinstance(item, _Resp) else _Resp(item)
        if not 200 <= resp.status <= 299:
            raise ApiServerError(resp.status, "", b"".join(resp.chunks).decode())
        yield resp.iter_any()


def page(items: list[dict[str, Any]], rv: str, cont: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"resourceVersion": rv}
    if cont:
        meta["continue"] = cont
    return {"items": items, "metadata": meta}


async def until(cond: Callable[[], bool], within: float = 3.0) -> None:
    async with asyncio.timeout(within):
        while not cond():  # noqa: ASYNC110 - test helper
            await asyncio.sleep(0.005)


class Recorder:
    """A sink: feeds a catalog and remembers every (kind, name) it was handed."""

    def __init__(self) -> None:
        self.catalog = Catalog()
        self.seen: list[tuple[str, str]] = []

    def __call__(self, plural: str, kind: str, o: dict[str, Any]) -> None:
        self.seen.append((kind, o["metadata"]["name"]))
        self.catalog.apply(plural, kind, o)

    def names(self) -> set[str]:
        return {name for _, name in self.catalog.runs}

    def phase(self, name: str) -> str | None:
        run = self.catalog.runs[("ns", name)]
        return run.phase.value if run.phase else None


@pytest.fixture
def api() -> ScriptedApi:
    return ScriptedApi()


@pytest.fixture
def sink() -> Recorder:
    return Recorder()


def make_watch(api: ScriptedApi, sink: Recorder, namespace: str | None = "ns") -> ResourceWatch:
    return ResourceWatch(api, namespace, RUNS, sink, backoff=Backoff(0.01, 0.02))


async def test_list_paginates_then_watches_from_its_rv(api: ScriptedApi, sink: Recorder) -> None:
    api.lists.extend([page([obj("a", 1)], "5", cont="tok"), page([obj("b", 2)], "10")])
    w = make_watch(api, sink)
    task = asyncio.create_task(w.run())
    try:
        await until(lambda: w.synced)
        assert sink.names() == {"a", "b"} and w.resource_version == "10"
        assert w.versions == {("ns", "a"): "1", ("ns", "b"): "2"}  # only versions kept
        assert api.calls[0]["limit"] == 500 and api.calls[1]["continue"] == "tok"
        await until(lambda: any(c.get("watch") for c in api.calls))
        watch_call = next(c for c in api.calls if c.get("watch"))
        assert watch_call["resourceVersion"] == "10"
        assert watch_call["allowWatchBookmarks"] is True
        assert watch_call["timeoutSeconds"] == 300
        assert watch_call["namespace"] == "ns"
    finally:
        task.cancel()


async def test_cluster_wide_watch(api: ScriptedApi, sink: Recorder) -> None:
    api.lists.append(page([obj("a", 1, ns="team-a"), obj("a", 2, ns="team-b")], "2"))
    w = make_watch(api, sink, namespace=None)
    assert w.where == "all namespaces"
    task = asyncio.create_task(w.run())
    try:
        await until(lambda: any(c.get("watch") for c in api.calls))
        assert {c["namespace"] for c in api.calls} == {None}  # the cluster-wide path
        # one name in two namespaces: two runs
        assert set(sink.catalog.runs) == {("team-a", "a"), ("team-b", "a")}
        assert sink.catalog.run_keys_named("a") == [("team-a", "a"), ("team-b", "a")]
    finally:
        task.cancel()


async def test_events_bookmarks_and_resume(api: ScriptedApi, sink: Recorder) -> None:
    api.lists.append(page([obj("a", 1)], "1"))
    a2 = event("MODIFIED", obj("a", 3, "Running"))
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
    w = make_watch(api, sink)
    task = asyncio.create_task(w.run())
    try:
        await until(lambda: w.resource_version == "9")
        assert sink.names() == {"a"} and sink.phase("a") == "Running"
        assert w.versions == {("ns", "a"): "3"}
        assert ("BOOKMARK", "") not in sink.seen  # bookmarks only move the resourceVersion
        # the server ended the watch: it resumes from the bookmark, without a new list
        await until(lambda: sum(1 for c in api.calls if c.get("watch")) == 2)
        assert api.calls[-1]["resourceVersion"] == "9"
        assert sum(1 for c in api.calls if not c.get("watch")) == 1
        assert w.synced
    finally:
        task.cancel()


async def test_gone_relists_and_the_relist_removes_vanished_objects(
    api: ScriptedApi, sink: Recorder
) -> None:
    api.lists.extend([page([obj("a", 1), obj("b", 2)], "2"), page([obj("a", 7)], "8")])
    gone = {"type": "ERROR", "object": {"kind": "Status", "code": 410, "message": "too old"}}
    api.watches.append([json.dumps(gone).encode() + b"\n"])
    w = make_watch(api, sink)
    task = asyncio.create_task(w.run())
    try:
        await until(lambda: w.lists == 2)
        assert sink.names() == {"a"} and w.resource_version == "8"
        assert ("DELETED", "b") in sink.seen and ("MODIFIED", "a") in sink.seen
        assert ("ns", "b") not in w.versions
        assert sink.catalog.runs_of(("ns", "c")) == [sink.catalog.runs[("ns", "a")]]
    finally:
        task.cancel()


async def test_a_waiter_learns_of_a_run_that_vanished_during_a_relist(
    api: ScriptedApi, sink: Recorder
) -> None:
    """The relist names a vanished run only by its key: the run's waiter still ends."""
    api.lists.extend([page([obj("r", 1, "Running")], "1"), page([], "5")])
    w = make_watch(api, sink)
    await w.list_once()
    waiting = asyncio.create_task(sink.catalog.waiters.wait(sink.catalog.runs[("ns", "r")]))
    await asyncio.sleep(0)
    await w.list_once()
    assert await asyncio.wait_for(waiting, 1) is None  # None: deleted
    assert len(sink.catalog.waiters) == 0


async def test_connection_errors_mark_unsynced_then_recover(
    api: ScriptedApi, sink: Recorder
) -> None:
    api.lists.extend(
        [
            aiohttp.ClientConnectionError("refused"),
            ApiServerError(503, "down"),
            page([obj("a", 1)], "1"),
        ]
    )
    w = make_watch(api, sink)
    assert not w.synced
    task = asyncio.create_task(w.run())
    try:
        await until(lambda: len(api.calls) >= 1)
        await until(lambda: w.synced)
        assert sink.names() == {"a"}
        api.watches.append(OSError("connection reset"))
        await until(lambda: not w.synced)
        assert "connection reset" in (w.last_error or "")
        api.watches.append([event("ADDED", obj("c", 2))])
        await until(lambda: "c" in sink.names())
        assert w.synced
    finally:
        task.cancel()


async def test_local_writes_survive_an_older_snapshot(api: ScriptedApi, sink: Recorder) -> None:
    w = make_watch(api, sink)
    w.apply_local(obj("mine", 50))
    api.lists.append(page([obj("other", 3)], "40"))  # taken before our create
    await w.list_once()
    assert sink.names() == {"mine", "other"}
    api.lists.append(page([obj("other", 3)], "60"))  # after: it is really gone
    await w.list_once()
    assert sink.names() == {"other"}


async def test_relist_keeps_a_newer_local_write(api: ScriptedApi, sink: Recorder) -> None:
    """Read-your-writes: a snapshot holding an older copy does not undo our own patch."""
    api.lists.append(page([obj("r", 5, "Running")], "5"))
    w = make_watch(api, sink)
    await w.list_once()
    w.apply_local(obj("r", 50, "Succeeded"))  # e.g. our write, after the next snapshot's time
    api.lists.append(page([obj("r", 5, "Running")], "40"))
    await w.list_once()
    assert sink.phase("r") == "Succeeded" and w.versions[("ns", "r")] == "50"
    api.lists.append(page([obj("r", 60, "Failed")], "60"))  # newer than ours: it wins
    await w.list_once()
    assert sink.phase("r") == "Failed"


def test_apply_local_keeps_newer_watch_state(sink: Recorder) -> None:
    w = ResourceWatch(ScriptedApi(), "ns", RUNS, sink)
    w.handle_event({"type": "MODIFIED", "object": obj("r", 9, "Running")})
    w.apply_local(obj("r", 8))
    assert sink.phase("r") == "Running"
    w.apply_local(obj("r", 10, "Succeeded"))
    assert sink.phase("r") == "Succeeded"


def test_an_object_the_sink_cannot_take_does_not_stop_the_watch() -> None:
    taken: list[str] = []

    def picky(plural: str, kind: str, o: dict[str, Any]) -> None:
        if o["metadata"]["name"] == "bad":
            raise RuntimeError("cannot")
        taken.append(o["metadata"]["name"])

    w = ResourceWatch(ScriptedApi(), "ns", RUNS, picky)
    w.handle_event({"type": "ADDED", "object": obj("bad", 1)})
    w.handle_event({"type": "ADDED", "object": obj("good", 2)})
    assert taken == ["good"] and w.resource_version == "2"


def test_rv_newer() -> None:
    assert rv_newer("10", "9") and not rv_newer("9", "10") and rv_newer("1", None)
    assert rv_newer("abc", "def")


async def test_watch_http_errors(api: ScriptedApi, sink: Recorder) -> None:
    api.lists.extend([page([obj("a", 1)], "1"), page([obj("b", 2)], "2")])
    api.watches.extend([_Resp([b"forbidden"], status=403), _Resp([b"gone"], status=410)])
    w = make_watch(api, sink)
    task = asyncio.create_task(w.run())
    try:
        await until(lambda: w.lists == 2)  # 403: retried; 410: listed again
        assert sink.names() == {"b"}
    finally:
        task.cancel()


def _requests(verb: str, resource: str, code: str | None = None) -> float:
    registry = Metrics().registry  # what /metrics serves
    return sum(  # every status code
        sample.value
        for metric in registry.collect()
        for sample in metric.samples
        if sample.name == "datapipelines_api_apiserver_requests_total"
        and sample.labels["verb"] == verb
        and sample.labels["resource"] == resource
        and code in (None, sample.labels["code"])
    )


async def test_lists_and_watches_are_counted(api: ScriptedApi, sink: Recorder) -> None:
    lists, watches = _requests("list", RUNS), _requests("watch", RUNS)
    refused = _requests("watch", RUNS, "500")
    api.lists.extend([page([obj("a", 1)], "5", cont="tok"), page([], "6")])
    api.watches.append(_Resp([], status=500))  # refused: counted with its code, then retried
    api.watches.append(_Resp([b""]))  # answered: counted once open
    w = make_watch(api, sink)
    task = asyncio.create_task(w.run())
    try:
        await until(lambda: _requests("watch", RUNS) >= watches + 2, within=10)
        assert _requests("list", RUNS) == lists + 2  # two pages
        assert _requests("watch", RUNS, "500") == refused + 1
    finally:
        task.cancel()


# --- WatchCache ------------------------------------------------------------------------------


def test_watch_cache_scopes() -> None:
    per_namespace = WatchCache(ScriptedApi(), ["a", "b"])
    assert set(per_namespace.watches) == {
        (plural, ns)
        for plural in ("pipelineconnections", "pipelineruns", "pipelinebatches")
        for ns in ("a", "b")
    }
    assert per_namespace.watch_for(RUNS, "b").namespace == "b"
    cluster = WatchCache(ScriptedApi(), [])
    assert {ns for _, ns in cluster.watches} == {None}
    assert cluster.watch_for(RUNS, "anywhere").namespace is None
    # every watch feeds the one catalog
    cluster.watch_for(RUNS, "x").handle_event({"type": "ADDED", "object": obj("r", 1, ns="x")})
    assert ("x", "r") in cluster.catalog.runs


async def test_watch_cache_readiness_and_run_end(api: ScriptedApi) -> None:
    # three resources list in turn; the runs watch later reports the run's end
    catalog = Catalog()
    cache = WatchCache(api, ["ns"], catalog=catalog, watch_timeout=30)
    assert cache.catalog is catalog
    ready, reason = cache.readiness()
    assert ready is False and "pipelineruns in ns: not listed yet" in reason
    for w in cache.watches.values():
        w._backoff = Backoff(0.01, 0.02)
    api.lists.extend([page([], "1"), page([obj("r", 2, "Running")], "2"), page([], "3")])
    cache.start()
    try:
        await until(lambda: cache.readiness()[0])
        assert cache.readiness() == (True, "synced")
        run = catalog.runs[("ns", "r")]
        waiting = asyncio.create_task(catalog.waiters.wait(run))
        await asyncio.sleep(0.02)
        assert not waiting.done()
        cache.watch_for(RUNS, "ns").handle_event(
            {"type": "MODIFIED", "object": obj("r", 5, "Succeeded")}
        )
        ended = await asyncio.wait_for(waiting, 1)
        assert ended is not None and ended.phase is not None and ended.phase.value == "Succeeded"
    finally:
        await cache.stop()
