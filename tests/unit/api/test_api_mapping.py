"""Pure mapping functions: CR dicts and archive rows to API bodies."""

from __future__ import annotations

from datetime import UTC, datetime

from datapipelines.api import mapping
from datapipelines.resources import LABEL_CONNECTION, LABEL_TRIGGER


def run(name: str = "r", **status: object) -> dict:
    return {
        "metadata": {
            "name": name,
            "creationTimestamp": "2026-11-30T07:59:00Z",
            "labels": {LABEL_CONNECTION: "c"},
        },
        "spec": {"connectionName": "c", "trigger": "schedule"},
        "status": status,
    }


def test_phase_from_status_condition_or_default() -> None:
    assert mapping.run_phase(run(phase="Running")) == "Running"
    cond = {"type": "Succeeded", "status": "False", "reason": "Cancelled", "message": "by api"}
    assert mapping.run_phase(run(conditions=[cond])) == "Cancelled"
    assert mapping.run_phase(run()) == "Queued"
    assert mapping.run_phase({"metadata": {"name": "x"}}) == "Queued"
    assert mapping.run_phase(run(phase="Weird")) == "Queued"
    assert mapping.is_terminal(run(phase="Failed")) and not mapping.is_terminal(run())


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
            "report": "R",
            "reportTruncated": True,
        },
    )
    out = mapping.run_result(r, include_report=True)
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
    }
    assert mapping.run_result(r, include_report=False).report is None


def test_run_result_phase_wins_over_result_success() -> None:
    r = run(phase="Cancelled", result={"success": True})
    out = mapping.run_result(r, include_report=False)
    assert out.success is False and out.error == "run cancelled" and out.duration_ms == 0


def test_task_status_of_queued_run_uses_creation_time() -> None:
    out = mapping.task_status_of_run(run())
    assert out.started_at == "2026-11-30T07:59:00Z" and out.status == "queued"
    assert out.trigger == "schedule" and out.kind == "single" and out.connections == ["c"]


def test_batch_runs_merges_status_and_labelled_runs() -> None:
    batch = {
        "metadata": {"name": "b"},
        "spec": {"connections": ["c", "d"]},
        "status": {
            "state": "running",
            "runs": [{"connection": "c", "runName": "c-1", "phase": "Running"}],
        },
    }
    c1 = run("c-1", phase="Succeeded")
    c1["metadata"]["labels"]["datapipelines.io/batch"] = "b"
    d1 = run("d-1", phase="Running")
    d1["metadata"]["labels"]["datapipelines.io/batch"] = "b"
    d1["spec"]["connectionName"] = "d"
    other = run("x-1", phase="Running")
    out = mapping.batch_runs(batch, [c1, d1, other])
    assert [(r.connection, r.run_id, r.phase, r.success) for r in out] == [
        ("c", "c-1", "Succeeded", True),
        ("d", "d-1", "Running", None),
    ]


def test_batch_without_status_is_queued() -> None:
    out = mapping.task_status_of_batch(
        {"metadata": {"name": "b", "creationTimestamp": "T"}, "spec": {"connections": ["a"]}}, []
    )
    assert out.status == "queued" and out.active and out.started_at == "T"
    assert out.completed == [] and out.current is None and out.runs == []


def test_history_entry_of_row() -> None:
    row = {
        "run_name": "a-1",
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
    assert e.started_at == "2026-11-30T08:00:00Z"
    assert e.finished_at == "2026-11-30T08:01:00.500000Z"


def test_newest_last_run_prefers_later_then_first() -> None:
    a = mapping.LastRun("runs", "2026-11-30T08:00:00Z", True, None, 1, 1, "a")
    b = mapping.LastRun("connection", "2026-11-30T09:00:00Z", True, None, 1, 1, "b")
    c = mapping.LastRun("connection", "2026-11-30T08:00:00Z", True, None, 1, 1, "c")
    assert mapping.newest_last_run(a, b) is b
    assert mapping.newest_last_run(a, c) is a
    assert mapping.newest_last_run(None, None) is None


def test_new_run_manifest() -> None:
    m = mapping.new_run_manifest("demo-items")
    assert m["apiVersion"] == "datapipelines.io/v1alpha1" and m["kind"] == "PipelineRun"
    assert m["metadata"]["generateName"] == "demo-items-"
    assert m["metadata"]["labels"] == {LABEL_CONNECTION: "demo-items", LABEL_TRIGGER: "api"}
    assert m["spec"] == {"connectionName": "demo-items", "trigger": "api"}
    long = mapping.new_run_manifest("x" * 80)
    assert len(long["metadata"]["generateName"]) + 5 <= 63
    assert LABEL_CONNECTION not in long["metadata"]["labels"]


def test_new_batch_manifest() -> None:
    m = mapping.new_batch_manifest(["a", "b"])
    assert m["kind"] == "PipelineBatch" and m["spec"] == {"connections": ["a", "b"]}
    assert m["metadata"]["generateName"] == "batch-"


def test_merge_history_dedupes_and_orders() -> None:
    r1 = run(
        "r1",
        phase="Succeeded",
        startTime="2026-11-30T08:00:00Z",
        completionTime="2026-11-30T08:10:00Z",
    )
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


def test_time_helpers() -> None:
    assert mapping.format_time(datetime(2026, 1, 2, 3, 4, 5)) == "2026-01-02T03:04:05Z"
    assert mapping.format_time("2026-01-02T03:04:05Z") == "2026-01-02T03:04:05Z"
    assert mapping.parse_time("garbage") is None
    assert mapping.parse_time("2026-01-02T03:04:05") == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
