"""Store: kopf's indexes (plain dicts here) plus the overlay of the operator's own writes
(read-your-writes), and the index keys every object is filed under."""

from __future__ import annotations

from typing import Any

from datapipelines.operator.store import (
    Store,
    batch_keys,
    connection_keys,
    job_keys,
    pod_keys,
    run_keys,
)
from datapipelines.resources.run import RunPhase
from tests.unit.operator.opkit import (
    NS,
    batch,
    connection,
    duckdb_on_volume,
    job,
    pod,
    rest_spec,
    run,
)


def index(objs: list[Any], keys: Any) -> dict[tuple[str, ...], list[Any]]:
    """An index as kopf keeps it: key → the objects filed under it."""
    out: dict[tuple[str, ...], list[Any]] = {}
    for obj in objs:
        for key, value in keys(obj).items():
            out.setdefault(key, []).append(value)
    return out


class Indexes:
    """Mutable indexes behind a Store, standing in for kopf's watch-fed ones."""

    def __init__(self, **objs: list[Any]) -> None:
        self.conns = index(objs.get("conns", []), connection_keys)
        self.runs = index(objs.get("runs", []), run_keys)
        self.jobs = index(objs.get("jobs", []), job_keys)
        self.pods = index(objs.get("pods", []), pod_keys)
        self.batches = index(objs.get("batches", []), batch_keys)
        self.store = Store(self.conns, self.runs, self.jobs, self.pods, self.batches)

    def set_runs(self, *runs: Any) -> None:
        """The watch delivered a new state of the runs."""
        self.runs.clear()
        self.runs.update(index(list(runs), run_keys))


# --------------------------------------------------------------------------- keys


def test_index_keys() -> None:
    conn = connection("a", spec=rest_spec(destination=duckdb_on_volume()))
    keys = connection_keys(conn)
    assert ("conn", NS, "a") in keys
    (dest,) = [k for k in keys if k[0] == "dest"]
    assert dest[1].startswith(f"duckdb://{NS}/") and dest[1].endswith("/data/shared.duckdb")
    assert set(run_keys(run("r1", "a", batch="b1"))) == {
        ("conn", NS, "a"),
        ("name", NS, "r1"),
        ("batch", NS, "b1"),
    }
    assert set(run_keys(run("r2", "a"))) == {("conn", NS, "a"), ("name", NS, "r2")}
    assert set(job_keys(job("r1", "a"))) == {("run", NS, "r1")}
    assert set(pod_keys(pod("r1", "a"))) == {("run", NS, "r1")}
    assert batch_keys(batch("b1")) == {("batch", NS, "b1"): batch("b1")}


def test_a_connection_whose_spec_does_not_parse_has_no_destination_key() -> None:
    broken = connection("a", spec={"type": "rest_api"})
    assert broken.spec is None and broken.spec_problems
    assert list(connection_keys(broken)) == [("conn", NS, "a")]


def test_a_pod_without_the_run_label_is_not_indexed() -> None:
    body_pod = pod("")
    assert pod_keys(body_pod) == {}


def test_store_of_reads_like_kopf_indexes() -> None:
    store = Store.of(
        connections=[connection("a"), connection("b")],
        runs=[run("a-1", "a", batch="b1"), run("a-2", "a"), run("b-1", "b")],
        jobs=[job("a-1", "a")],
        pods=[pod("a-1", "a", name="p2", created=-10), pod("a-1", "a", name="p1", created=-40)],
        batches=[batch("b1")],
    )
    assert store.connection(NS, "a") is not None and store.connection(NS, "zzz") is None
    assert sorted(r.name for r in store.runs_of(NS, "a")) == ["a-1", "a-2"]
    assert [r.name for r in store.runs_of_batch(NS, "b1")] == ["a-1"]
    assert store.run(NS, "b-1") is not None and store.run("other-ns", "b-1") is None
    assert [j.name for j in store.jobs_of(NS, "a-1")] == ["a-1"]
    assert [p.name for p in store.pods_of(NS, "a-1")] == ["p1", "p2"]  # oldest first
    assert store.batch(NS, "b1") is not None
    assert sorted(store.connection_keys()) == [(NS, "a"), (NS, "b")]
    assert sorted(store.run_connections()) == [(NS, "a"), (NS, "b")]
    assert store.batch_keys() == [(NS, "b1")]
    shared = store.connections_sharing(connection("a").destination.key)  # type: ignore[union-attr]
    assert sorted(c.name for c in shared) == ["a", "b"]  # both on the default warehouse file


# --------------------------------------------------------------------------- the overlay


def test_a_remembered_newer_object_shadows_the_index_until_it_catches_up() -> None:
    idx = Indexes(runs=[run("r1", rv=100)])
    store = idx.store
    store.remember("run", run("r1", rv=105, phase="Running"), NS, "r1")
    assert store.run(NS, "r1").phase is RunPhase.RUNNING  # type: ignore[union-attr]
    assert [r.phase for r in store.runs_of(NS, "demo")] == [RunPhase.RUNNING]

    # the watch delivers that version (with more in it): the index wins, the overlay is dropped
    idx.set_runs(run("r1", rv=105, phase="Running", status={"attempts": 2}))
    assert [r.status.attempts for r in store.runs_of(NS, "demo")] == [2]
    idx.set_runs(run("r1", rv=110, phase="Succeeded"))
    assert store.run(NS, "r1").phase is RunPhase.SUCCEEDED  # type: ignore[union-attr]


def test_an_older_remembered_object_never_hides_a_newer_indexed_one() -> None:
    idx = Indexes(runs=[run("r1", rv=110, phase="Succeeded")])
    idx.store.remember("run", run("r1", rv=105, phase="Running"), NS, "r1")
    assert idx.store.run(NS, "r1").phase is RunPhase.SUCCEEDED  # type: ignore[union-attr]


def test_created_objects_appear_before_the_index_has_them() -> None:
    idx = Indexes(runs=[run("r1")])
    store = idx.store
    store.remember("run", run("r2", rv=200), NS, "r2", created=True)
    store.remember("run", run("b1-a", "a", batch="b1", rv=201), NS, "b1-a", created=True)
    store.remember("job", job("r2"), NS, "r2", created=True)
    assert sorted(r.name for r in store.runs_of(NS, "demo")) == ["r1", "r2"]
    assert [r.name for r in store.runs_of(NS, "a")] == ["b1-a"]
    assert [r.name for r in store.runs_of_batch(NS, "b1")] == ["b1-a"]
    assert store.run(NS, "r2") is not None
    assert [j.name for j in store.jobs_of(NS, "r2")] == ["r2"]
    assert store.runs_of(NS, "other") == [] and store.runs_of("ns2", "demo") == []


def test_tombstones_hide_deleted_objects() -> None:
    idx = Indexes(runs=[run("r1"), run("r2")], jobs=[job("r1")], batches=[batch("b1")])
    store = idx.store
    store.forget("uid-r1")
    store.forget("uid-job-r1")
    store.forget("uid-b1")
    store.forget("")  # no uid: nothing to hide
    assert [r.name for r in store.runs_of(NS, "demo")] == ["r2"]
    assert store.run(NS, "r1") is None
    assert store.jobs_of(NS, "r1") == []
    assert store.batch(NS, "b1") is None
    # a new object of the same name (another uid) is not hidden
    idx.set_runs(run("r1", uid="uid-r1-again"), run("r2"))
    assert sorted(r.name for r in store.runs_of(NS, "demo")) == ["r1", "r2"]


def test_a_remembered_connection_status() -> None:
    idx = Indexes(conns=[connection("a", rv=10)])
    newer = connection("a", rv=11, status={"lastRunName": "a-1"})
    idx.store.remember("conn", newer, NS, "a")
    assert idx.store.connection(NS, "a").status.last_run_name == "a-1"  # type: ignore[union-attr]


def test_a_remembered_object_deleted_before_the_index_caught_up_disappears() -> None:
    idx = Indexes(runs=[run("r1", rv=100)])
    idx.store.remember("run", run("r1", rv=105, phase="Queued"), NS, "r1")
    idx.set_runs()  # the watch: MODIFIED (rv 105), then DELETED, before any read
    assert idx.store.runs_of(NS, "demo") == []


def test_overlay_entries_and_tombstones_expire_oldest_first(monkeypatch: Any) -> None:
    from datapipelines.operator import store as store_module

    now = [1000.0]
    monkeypatch.setattr(store_module.time, "monotonic", lambda: now[0])
    idx = Indexes(runs=[run("r1", rv=100)])
    store = idx.store
    store.remember("run", run("r1", rv=105, phase="Queued"), NS, "r1")
    store.remember("run", run("r9", rv=106), NS, "r9", created=True)
    store.forget("uid-old")
    now[0] += 30
    store.forget("uid-old")  # forgotten again: lives 60 s from now
    store.remember("run", run("r9", rv=107), NS, "r9", created=True)  # rewritten: moved last
    now[0] += 40  # 70 s after the first writes, 40 s after the rewrites
    names = sorted(r.name for r in store.runs_of(NS, "demo"))
    assert names == ["r1", "r9"]
    overlay = store._overlay
    assert list(overlay.objects) == [("run", NS, "r9")]  # r1's stale copy expired
    assert list(overlay.deleted_uids) == ["uid-old"]
    now[0] += 61
    assert [r.name for r in store.runs_of(NS, "demo")] == ["r1"]  # r9 never confirmed
    assert overlay.objects == {} and overlay.created == {} and overlay.deleted_uids == {}
