"""The catalog: what the watches hold, indexed per connection, per batch and by name across
namespaces; no I/O, fed the watch events directly."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from datapipelines.api import services
from datapipelines.api.access import KeyCaller
from datapipelines.api.catalog import Catalog, ConnectionSummary
from datapipelines.api.errors import Conflict
from datapipelines.api.mapping import connection_fragment
from tests.unit.api.fakekube import T0, FakeStore, connection

CONNS, RUNS, BATCHES = "pipelineconnections", "pipelineruns", "pipelinebatches"

EVERYONE = KeyCaller("key:test")


def conn(name: str, ns: str = "a", **spec: Any) -> dict[str, Any]:
    obj = connection(name, **spec)
    obj["metadata"]["namespace"] = ns
    return obj


def run(
    name: str,
    connection_name: str,
    ns: str = "a",
    phase: str | None = None,
    *,
    created: str = T0,
    batch: str | None = None,
    rv: int = 1,
    **status: Any,
) -> dict[str, Any]:
    labels = {"datapipelines.io/connection": connection_name}
    if batch:
        labels["datapipelines.io/batch"] = batch
    st = dict(status)
    if phase:
        st["phase"] = phase
    return {
        "metadata": {
            "name": name,
            "namespace": ns,
            "resourceVersion": str(rv),
            "creationTimestamp": created,
            "labels": labels,
        },
        "spec": {"connectionName": connection_name, "trigger": "api"},
        "status": st,
    }


def finished(name: str, connection_name: str, start: str, ns: str = "a") -> dict[str, Any]:
    return run(
        name,
        connection_name,
        ns,
        "Succeeded",
        startTime=start,
        completionTime=start.replace(":00Z", ":30Z"),
        result={"success": True},
    )


def test_active_runs_in_queue_order_and_the_last_finished_run_per_connection() -> None:
    c = Catalog()
    c.apply(CONNS, "ADDED", conn("alpha"))
    c.apply(CONNS, "ADDED", conn("beta"))
    c.apply(RUNS, "ADDED", run("alpha-late", "alpha", created="2026-11-30T08:05:00Z"))
    c.apply(RUNS, "ADDED", run("alpha-early", "alpha", phase="Running"))
    # the same creation second: the operator's sequence decides
    c.apply(RUNS, "ADDED", run("alpha-seq2", "alpha", created="2026-11-30T08:01:00Z", sequence=2))
    c.apply(RUNS, "ADDED", run("alpha-seq1", "alpha", created="2026-11-30T08:01:00Z", sequence=1))
    c.apply(RUNS, "ADDED", finished("alpha-1", "alpha", "2026-11-30T07:00:00Z"))
    c.apply(RUNS, "ADDED", finished("alpha-2", "alpha", "2026-11-30T07:10:00Z"))
    # other connections' and other namespaces' runs do not count
    c.apply(RUNS, "ADDED", finished("beta-1", "beta", "2026-11-30T09:00:00Z"))
    c.apply(RUNS, "ADDED", run("alpha-b", "alpha", ns="b", phase="Running"))
    c.apply(RUNS, "ADDED", finished("alpha-b2", "alpha", "2026-11-30T09:00:00Z", ns="b"))
    # cancelled before it started: ended, but not a "last run"
    c.apply(RUNS, "ADDED", run("alpha-never", "alpha", phase="Cancelled"))
    assert [r.name for r in c.active_runs(("a", "alpha"))] == [
        "alpha-early",
        "alpha-seq1",
        "alpha-seq2",
        "alpha-late",
    ]
    last = c.last_finished(("a", "alpha"))
    assert last is not None and last.name == "alpha-2"
    assert len(c.runs_of(("a", "alpha"))) == 7
    # a run that ends leaves the active ones and becomes the last one
    c.apply(
        RUNS,
        "MODIFIED",
        run(
            "alpha-early",
            "alpha",
            phase="Failed",
            rv=2,
            startTime="2026-11-30T08:00:00Z",
            completionTime="2026-11-30T08:00:09Z",
            result={"success": False},
        ),
    )
    assert c.active_runs(("a", "alpha"))[0].name == "alpha-seq1"
    last = c.last_finished(("a", "alpha"))
    assert last is not None and last.name == "alpha-early"
    c.apply(RUNS, "DELETED", run("alpha-early", "alpha"))
    last = c.last_finished(("a", "alpha"))
    assert last is not None and last.name == "alpha-2"
    assert c.active_runs(("a", "nobody")) == [] and c.last_finished(("a", "nobody")) is None


def test_names_across_namespaces() -> None:
    fake = FakeStore("a", "b")
    fake.add_connection("alpha")
    fake.add_connection("alpha", namespace="b")
    fake.add_connection("beta", namespace="b")
    summary = fake.connection("beta")
    assert isinstance(summary, ConnectionSummary) and summary.key == ("b", "beta")
    assert fake.connection("nope") is None
    with pytest.raises(Conflict) as refused:
        fake.connection("alpha")
    assert "namespaces a, b" in refused.value.detail
    assert refused.value.extra == {"connection": "alpha", "namespaces": ["a", "b"]}
    fake.delete_connection("alpha", namespace="a")
    alpha = fake.connection("alpha")
    assert alpha is not None and alpha.namespace == "b"
    assert fake.catalog.connection_keys_named("alpha") == [("b", "alpha")]


async def test_a_batch_task_is_the_batches_of_one_name() -> None:
    fake = FakeStore("a", "b")
    fake.add_batch("batch-1", ["alpha"], state="running")
    fake.add_batch("batch-1", ["beta"], namespace="b", state="queued")
    fake.add_batch("batch-2", ["alpha"])
    fake.add_run("alpha-b1", "alpha", "Running", batch="batch-1")
    fake.add_run("beta-b1", "beta", batch="batch-1", namespace="b")
    fake.add_run("alpha-b2", "alpha", batch="batch-2")
    batches = fake.batches("batch-1")
    assert [(b.metadata.namespace, b.spec.connections) for b in batches] == [
        ("a", ["alpha"]),
        ("b", ["beta"]),
    ]
    assert [r.name for r in fake.catalog.runs_of_batch(("a", "batch-1"))] == ["alpha-b1"]
    assert [r.name for r in fake.catalog.runs_of_batch(("b", "batch-1"))] == ["beta-b1"]
    status = await services.task_status(fake, "batch-1", caller=EVERYONE)
    assert status.kind == "batch" and status.status == "running"
    assert status.connections == ["alpha", "beta"]
    assert [r.run_id for r in status.runs or []] == ["alpha-b1", "beta-b1"]
    assert fake.batches("nope") == []


def test_reports_are_not_kept_in_memory() -> None:
    c = Catalog()
    report = "x" * 60_000
    c.apply(
        RUNS,
        "ADDED",
        run(
            "r",
            "alpha",
            phase="Succeeded",
            runnerResult={"success": True, "report": report, "reportTruncated": False},
            result={"success": True, "report": report},
        ),
    )
    kept = c.runs[("a", "r")]
    assert kept.report() is None and ("a", "r") in c.reports
    assert kept.status.runner_result is not None and kept.status.runner_result.success is True
    # a later version without a report: nothing to read any more
    c.apply(RUNS, "MODIFIED", run("r", "alpha", phase="Succeeded", rv=2))
    assert ("a", "r") not in c.reports
    c.apply(RUNS, "MODIFIED", run("r", "alpha", rv=3, result={"success": True, "report": "R"}))
    c.apply(RUNS, "DELETED", run("r", "alpha"))
    assert c.reports == set() and c.runs == {}


async def test_reports_are_read_on_demand(fake: FakeStore) -> None:
    fake.add_run("alpha-1", "alpha", "Running")
    fake.finish_run("alpha-1", report="the whole report")
    run_ = fake.run("alpha-1")
    assert run_ is not None and run_.report() is None
    assert fake.report_reads == []
    status = await services.task_status_with_report(fake, "alpha-1", caller=EVERYONE)
    assert status.result is not None and status.result.report == "the whole report"
    assert fake.report_reads == ["alpha-1"]
    # the plain status (what progress updates use) never reads it
    plain = await services.task_status(fake, "alpha-1", caller=EVERYONE)
    assert plain.result is not None and plain.result.report is None
    assert fake.report_reads == ["alpha-1"]


async def test_a_run_the_model_refuses_leaves_the_catalog_and_ends_its_waiters() -> None:
    c = Catalog()
    c.apply(RUNS, "ADDED", run("r", "alpha", phase="Running"))
    waiting = asyncio.create_task(c.waiters.wait(c.runs[("a", "r")]))
    await asyncio.sleep(0)
    refused = run("r", "alpha", rv=2)
    refused["status"] = {"phase": "Exploded"}
    c.apply(RUNS, "MODIFIED", refused)
    assert c.runs == {} and c.runs_of(("a", "alpha")) == []
    assert await asyncio.wait_for(waiting, 1) is None


def test_refused_batches_are_ignored_and_deletions_need_only_the_name() -> None:
    c = Catalog()
    c.apply(BATCHES, "ADDED", {"metadata": {"name": "b", "namespace": "a"}, "spec": {}})
    assert c.batches == {}
    ok = {"metadata": {"name": "b", "namespace": "a"}, "spec": {"connections": ["x"]}}
    c.apply(BATCHES, "ADDED", ok)
    assert c.batch_keys_named("b") == [("a", "b")]
    c.apply(BATCHES, "DELETED", {"metadata": {"name": "b", "namespace": "a"}})
    c.apply(CONNS, "ADDED", conn("alpha"))
    c.apply(CONNS, "DELETED", {"metadata": {"name": "alpha", "namespace": "a"}})
    assert c.batches == {} and c.connections == {} and c.sorted_connections() == []


def test_fragments_are_rendered_again_only_for_changed_connections() -> None:
    c = Catalog()
    for name in ("alpha", "beta", "gamma"):
        c.apply(CONNS, "ADDED", conn(name))
    rendered: list[str] = []

    def counting(catalog: Catalog, summary: ConnectionSummary) -> bytes:
        rendered.append(summary.name)
        return connection_fragment(catalog, summary)

    def body() -> list[bytes]:
        return [c.fragment(key, counting) for key in c.sorted_connections()]

    first = body()
    assert rendered == ["alpha", "beta", "gamma"]
    assert body() == first and rendered == ["alpha", "beta", "gamma"]  # nothing changed
    rendered.clear()
    c.apply(RUNS, "ADDED", run("alpha-1", "alpha"))  # a run of alpha
    body()
    assert rendered == ["alpha"]
    rendered.clear()
    c.apply(CONNS, "MODIFIED", conn("beta", enabled=False))  # beta's spec
    c.apply(RUNS, "ADDED", run("gamma-1", "gamma", ns="b"))  # another namespace's gamma
    after = body()
    assert rendered == ["beta"]
    assert b'"enabled":false' in after[1] and b'"active_runs":["alpha-1"]' in after[0]
    rendered.clear()
    c.apply(RUNS, "DELETED", run("alpha-1", "alpha"))
    c.apply(CONNS, "ADDED", conn("delta"))
    assert [k[1] for k in c.sorted_connections()] == ["alpha", "beta", "delta", "gamma"]
    body()
    assert rendered == ["alpha", "delta"]
