"""Pure mapping: typed objects (the shared contract's models, as the catalog holds them) and
archive rows to API bodies."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from datapipelines.api import mapping
from datapipelines.api.catalog import Catalog, parse_batch, parse_run
from datapipelines.resources import LABEL_BATCH, LABEL_CONNECTION, LABEL_TRIGGER
from datapipelines.resources.batch import PipelineBatch
from datapipelines.resources.manifests import batch_manifest, run_manifest
from datapipelines.resources.run import PipelineRun, Trigger
from tests.unit.api.fakekube import connection

T = "2026-11-30T08:00:00Z"


def cond(reason: str, status: str = "False", message: str = "") -> dict[str, Any]:
    return {
        "type": "Succeeded",
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": T,
    }


def raw_run(
    name: str = "r", *, ns: str = "ns", conn: str = "c", batch: str | None = None, **status: Any
) -> dict[str, Any]:
    labels = {LABEL_CONNECTION: conn}
    if batch:
        labels[LABEL_BATCH] = batch
    return {
        "metadata": {
            "name": name,
            "namespace": ns,
            "creationTimestamp": "2026-11-30T07:59:00Z",
            "labels": labels,
        },
        "spec": {"connectionName": conn, "trigger": "schedule", "scheduledTime": T},
        "status": status,
    }


def run(name: str = "r", **kw: Any) -> PipelineRun:
    parsed, _ = parse_run(raw_run(name, **kw))
    assert parsed is not None
    return parsed


def batch(
    name: str = "b", ns: str = "ns", connections: list[str] | None = None, **status: Any
) -> PipelineBatch:
    parsed = parse_batch(
        {
            "metadata": {
                "name": name,
                "namespace": ns,
                "creationTimestamp": "2026-11-30T07:00:00Z",
                "labels": {LABEL_TRIGGER: "api"},
            },
            "spec": {"connections": connections or ["c"]},
            "status": status,
        }
    )
    assert parsed is not None
    return parsed


def test_phase_from_status_condition_or_default() -> None:
    assert mapping.phase_name(run(phase="Running")) == "Running"
    cancelled = run(conditions=[cond("Cancelled", message="by api")])
    assert mapping.phase_name(cancelled) == "Cancelled" and cancelled.terminal
    assert mapping.phase_name(run()) == "Queued"
    assert run(phase="Failed").terminal and not run().terminal
    # a phase the schema does not know is refused (the CRD's enum would have refused it too)
    assert parse_run(raw_run(phase="Weird")) == (None, False)


def test_parse_run_keeps_no_report_text() -> None:
    parsed, had_report = parse_run(
        raw_run(
            phase="Succeeded",
            runnerResult={"success": True, "report": "R" * 10_000, "reportTruncated": True},
            result={"success": True, "rowsInserted": 3},
        )
    )
    assert parsed is not None and had_report is True
    assert parsed.report() is None and parsed.status.result is not None
    assert parsed.status.runner_result is not None
    assert parsed.status.runner_result.report_truncated is True  # the flag stays
    assert parse_run(raw_run(phase="Running"))[1] is False


def test_run_result_full() -> None:
    r = run(
        phase="Succeeded",
        attempts=2,
        startTime="2026-11-30T08:00:00Z",
        completionTime="2026-11-30T08:00:05Z",
        result={
            "success": True,
            "durationMs": 4000,
            "rowsInserted": 7,
            "recordsReported": 8,
            "progressCounts": {"load": {"t": 7}},
            "reportTruncated": True,
            "schemaChanges": [
                {"kind": "TableAdded", "table": "t"},
                {"kind": "ColumnAdded", "table": "t", "column": "c", "dataType": "bigint"},
            ],
        },
    )
    out = mapping.run_result(r, report="R")
    assert out.model_dump() == {
        "success": True,
        "duration_ms": 4000,
        "rows_inserted": 7,
        "error": None,
        "report": "R",
        "attempts": 2,
        "records_reported": 8,
        "progress_counts": {"load": {"t": 7}},
        "run_id": "r",
        "status": "succeeded",
        "report_truncated": True,
        "schema_changes": [
            {"kind": "TableAdded", "table": "t"},
            {"kind": "ColumnAdded", "table": "t", "column": "c", "dataType": "bigint"},
        ],
    }
    without = mapping.run_result(r)
    assert without.report is None and without.report_truncated is None


def test_run_result_phase_wins_over_result_success() -> None:
    out = mapping.run_result(run(phase="Cancelled", result={"success": True}))
    assert out.success is False and out.error == "run cancelled" and out.duration_ms == 0
    assert out.status == "cancelled"


def test_run_result_of_an_infra_failure_without_result() -> None:
    r = run(
        phase="Failed",
        startTime="2026-11-30T08:00:00Z",
        completionTime="2026-11-30T08:00:03Z",
        conditions=[cond("Failed", message="OOMKilled")],
    )
    out = mapping.run_result(r)
    assert (out.success, out.error, out.duration_ms, out.rows_inserted) == (
        False,
        "OOMKilled",
        3000,
        0,
    )


def test_task_status_of_queued_run_uses_creation_time() -> None:
    out = mapping.task_status_of_run(run())
    assert out.started_at == "2026-11-30T07:59:00Z" and out.status == "queued"
    assert out.trigger == "schedule" and out.kind == "single" and out.connections == ["c"]
    assert out.result is None and out.error is None and out.active


def test_task_status_of_running_and_finished_run() -> None:
    running = run(
        phase="Running",
        startTime=T,
        attempts=1,
        progress={
            "stage": "load",
            "recordsExtracted": 9,
            "tables": {"t": 9},
            "rowsLoaded": {"t": 9},
            "jobsDone": 1,
            "jobsTotal": 2,
            "updatedAt": T,
        },
    )
    out = mapping.task_status_of_run(running)
    assert out.current == "c" and out.completed == [] and out.started_at == T
    assert out.progress is not None and out.progress.model_dump() == {
        "stage": "load",
        "records_extracted": 9,
        "tables": {"t": 9},
        "rows_loaded": {"t": 9},
        "jobs_done": 1,
        "jobs_total": 2,
        "updated_at": T,
    }
    done = run(
        phase="Failed",
        startTime=T,
        completionTime="2026-11-30T08:00:02Z",
        result={"success": False, "error": "boom"},
    )
    out = mapping.task_status_of_run(done, report="the report")
    assert out.status == "finished" and not out.active and out.completed == ["c"]
    assert out.error == "boom" and out.finished_at == "2026-11-30T08:00:02Z"
    assert out.result is not None and out.result.report == "the report"


def test_batch_runs_merges_status_and_labelled_runs() -> None:
    b = batch(
        connections=["c", "d"],
        state="running",
        runs=[{"connection": "c", "runName": "c-1", "phase": "Running"}],
    )
    c1 = run("c-1", batch="b", phase="Succeeded")
    d1 = run("d-1", conn="d", batch="b", phase="Running")
    out = mapping.batch_runs(b, [c1, d1])
    assert [(r.connection, r.run_id, r.phase, r.success) for r in out] == [
        ("c", "c-1", "Succeeded", True),  # the run object is newer than the batch's record
        ("d", "d-1", "Running", None),
    ]
    # a run the batch names but that is gone: its recorded phase
    gone = mapping.batch_runs(b, [])
    assert [(r.run_id, r.phase, r.success) for r in gone] == [("c-1", "Running", None)]


def test_batch_without_status_is_queued() -> None:
    out = mapping.task_status_of_batches([batch(connections=["a"])], {})
    assert out.status == "queued" and out.active and out.started_at == "2026-11-30T07:00:00Z"
    assert out.completed == [] and out.current is None and out.runs == []
    assert out.kind == "batch" and out.trigger == "api" and out.task_id == "b"


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        (["queued"], "queued"),
        (["queued", "queued"], "queued"),
        (["running", "finished"], "running"),
        (["finished", "queued"], "running"),  # one namespace still to go
        (["finished", "finished"], "finished"),
        (["finished", "cancelled"], "cancelled"),
        (["cancelled"], "cancelled"),
    ],
)
def test_batch_state_across_namespaces(states: list[str], expected: str) -> None:
    batches = [batch(ns=f"ns{i}", state=s) for i, s in enumerate(states)]
    assert mapping.batch_state(batches) == expected
    assert mapping.is_batch_finished(batches) is (expected in ("finished", "cancelled"))


def test_task_status_of_a_batch_in_two_namespaces() -> None:
    a = batch(
        ns="a",
        connections=["a1", "a2"],
        state="finished",
        completed=["a1", "a2"],
        startedAt="2026-11-30T08:00:00Z",
        finishedAt="2026-11-30T08:10:00Z",
        runs=[{"connection": "a1", "runName": "a1-b", "phase": "Succeeded"}],
    )
    b = batch(
        ns="b",
        connections=["b1"],
        state="running",
        current="b1",
        startedAt="2026-11-30T07:59:00Z",
    )
    runs = {"a": [run("a1-b", ns="a", conn="a1", batch="b", phase="Succeeded")]}
    runs["b"] = [run("b1-b", ns="b", conn="b1", batch="b", phase="Running")]
    out = mapping.task_status_of_batches([a, b], runs)
    assert out.status == "running" and out.active and out.current == "b1"
    assert out.connections == ["a1", "a2", "b1"] and out.completed == ["a1", "a2"]
    assert out.started_at == "2026-11-30T07:59:00Z" and out.finished_at is None
    assert [r.run_id for r in out.runs or []] == ["a1-b", "b1-b"]
    done = batch(
        ns="b",
        connections=["b1"],
        state="finished",
        completed=["b1"],
        startedAt="2026-11-30T07:59:00Z",
        finishedAt="2026-11-30T08:20:00Z",
    )
    out = mapping.task_status_of_batches([a, done], runs)
    assert out.status == "finished" and not out.active and out.current is None
    assert out.finished_at == "2026-11-30T08:20:00Z"


def test_history_entry_of_row() -> None:
    row = {
        "run_name": "a-1",
        "namespace": "team-a",
        "connection": "a",
        "trigger": "batch",
        "batch": "b-1",
        "phase": "Failed",
        "success": False,
        "started_at": datetime(2026, 11, 30, 8, 0, tzinfo=UTC),
        "finished_at": datetime(2026, 11, 30, 8, 1, 0, 500000, tzinfo=UTC),
        "duration_ms": 60500,
        "rows_inserted": 0,
        "records_reported": None,
        "attempts": 3,
        "error": "x",
    }
    e = mapping.history_entry_of_row(row)
    assert e.kind == "batch" and e.status == "failed" and not e.success
    assert e.namespace == "team-a" and e.run_id == "a-1" and e.attempts == 3
    assert e.started_at == "2026-11-30T08:00:00Z"
    assert e.finished_at == "2026-11-30T08:01:00Z"  # second precision, as Kubernetes writes


def test_history_entry_of_run() -> None:
    e = mapping.history_entry_of_run(
        run(
            "r1",
            batch="b-1",
            phase="Succeeded",
            startTime=T,
            completionTime="2026-11-30T08:00:09Z",
            attempts=1,
            result={"success": True, "rowsInserted": 4, "durationMs": 9000},
        )
    )
    assert (e.run_id, e.namespace, e.connection) == ("r1", "ns", "c")
    assert (e.kind, e.batch) == ("batch", "b-1")
    assert (e.status, e.success, e.rows_inserted, e.duration_ms) == ("succeeded", True, 4, 9000)
    assert e.trigger == "schedule" and e.finished_at == "2026-11-30T08:00:09Z"


def _catalog(*runs: dict[str, Any], **status: Any) -> tuple[Catalog, Any]:
    catalog = Catalog()
    catalog.apply("pipelineconnections", "ADDED", _conn(status))
    for r in runs:
        catalog.apply("pipelineruns", "ADDED", r)
    conn = catalog.connection(("test", "c"))
    return catalog, conn


def _conn(status: dict[str, Any]) -> dict[str, Any]:
    obj = connection("c", status=status) if status else connection("c")
    return obj


def test_the_newer_of_the_connections_record_and_the_runs_wins() -> None:
    record = {"lastRunAt": "2026-11-30T09:00:00Z", "lastRunSuccess": True, "lastRunName": "c-b"}
    older = raw_run("c-a", ns="test", phase="Failed", startTime=T, completionTime=T)
    catalog, conn = _catalog(older, **record)
    out = mapping.connection_status_out(catalog, conn)
    assert (out.last_run_id, out.last_run_source) == ("c-b", "connection")
    assert out.last_run_success is True
    newer = raw_run(
        "c-c",
        ns="test",
        phase="Failed",
        startTime="2026-11-30T10:00:00Z",
        completionTime="2026-11-30T10:00:01Z",
        result={"success": False, "error": "x"},
    )
    catalog, conn = _catalog(older, newer, **record)
    out = mapping.connection_status_out(catalog, conn)
    assert (out.last_run_id, out.last_run_source, out.last_run_success) == ("c-c", "runs", False)
    assert out.last_run_at == "2026-11-30T10:00:00Z" and out.last_run_error == "x"
    assert mapping.connection_out(catalog, conn).last_run_at == "2026-11-30T10:00:00Z"
    # never run: nothing
    catalog, conn = _catalog()
    out = mapping.connection_status_out(catalog, conn)
    assert out.last_run_at is None and out.last_run_source is None


def test_connection_out_active_runs_in_queue_order() -> None:
    first = raw_run("c-2", ns="test", phase="Running")
    second = raw_run("c-1", ns="test")
    second["metadata"]["creationTimestamp"] = "2026-11-30T08:30:00Z"
    done = raw_run("c-0", ns="test", phase="Succeeded", startTime=T, completionTime=T)
    catalog, conn = _catalog(second, done, first)
    out = mapping.connection_out(catalog, conn)
    assert out.active_runs == ["c-2", "c-1"] and out.namespace == "test"
    assert mapping.connection_fragment(catalog, conn) == out.model_dump_json().encode()


def test_manifests_the_api_creates() -> None:
    m = run_manifest("demo-items", Trigger.API, namespace="team-a")
    assert m["apiVersion"] == "datapipelines.io/v1alpha1" and m["kind"] == "PipelineRun"
    assert m["metadata"]["generateName"] == "demo-items-"
    assert m["metadata"]["namespace"] == "team-a"
    assert m["metadata"]["labels"] == {LABEL_CONNECTION: "demo-items", LABEL_TRIGGER: "api"}
    assert m["spec"] == {"connectionName": "demo-items", "trigger": "api"}
    longest = run_manifest("x" * 51, Trigger.API)
    assert len(longest["metadata"]["generateName"]) + 5 <= 57
    b = batch_manifest(["a", "b"], name="batch-1", namespace="team-b")
    assert b["kind"] == "PipelineBatch" and b["spec"] == {"connections": ["a", "b"]}
    assert b["metadata"]["name"] == "batch-1" and b["metadata"]["namespace"] == "team-b"


def test_merge_history_dedupes_and_orders() -> None:
    r1 = run("r1", phase="Succeeded", startTime=T, completionTime="2026-11-30T08:10:00Z")
    r2 = run(
        "r2",
        phase="Failed",
        startTime="2026-11-30T08:05:00Z",
        completionTime="2026-11-30T08:06:00Z",
    )
    active = run("r3", phase="Running")
    out = mapping.merge_history([r1, r2, active], [], 10)
    assert [e.run_id for e in out] == ["r1", "r2"]  # by finish time
    assert mapping.merge_history([r1, r2], [], 1)[0].run_id == "r1"
    # the archive's copy of a cluster run is replaced; the same name in another namespace stays
    archived = [
        mapping.history_entry_of_run(r2).model_copy(update={"error": "archived"}),
        mapping.history_entry_of_run(r2).model_copy(update={"namespace": "other"}),
    ]
    out = mapping.merge_history([r1, r2], archived, 10)
    assert [(e.run_id, e.namespace) for e in out] == [("r1", "ns"), ("r2", "ns"), ("r2", "other")]
    assert out[1].error != "archived"
