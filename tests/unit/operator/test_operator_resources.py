"""datapipelines.resources: models read apiserver objects; the history row mapper."""

from __future__ import annotations

from datapipelines.resources import history
from datapipelines.resources.models import (
    ConnectionSpec,
    RunPhase,
    RunStatus,
    is_terminal,
    set_condition,
)
from tests.unit.operator.opkit import connection


def test_connection_spec_round_trip() -> None:
    spec = ConnectionSpec.model_validate(connection()["spec"])
    assert spec.schema_name == "demo_data" and spec.source.rest_api is not None
    out = spec.to_k8s()
    assert out["schemaName"] == "demo_data" and out["source"]["restApi"]["baseUrl"]


def test_run_status_model() -> None:
    st = RunStatus.model_validate(
        {
            "phase": "Succeeded",
            "attempts": 2,
            "result": {"success": True, "rowsInserted": 5, "extra": 1},
        }
    )
    assert st.phase is RunPhase.SUCCEEDED and st.result is not None and st.result.rows_inserted == 5


def test_terminal_phases() -> None:
    assert is_terminal("Succeeded") and is_terminal("Failed") and is_terminal("Cancelled")
    assert not is_terminal("Queued") and not is_terminal("Running") and not is_terminal(None)


def test_condition_transition_time_only_changes_with_status() -> None:
    c1 = set_condition(None, type_="Ready", status="True", reason="Valid", message="", now="t1")
    c2 = set_condition(c1, type_="Ready", status="True", reason="Valid", message="x", now="t2")
    c3 = set_condition(c2, type_="Ready", status="False", reason="Bad", message="", now="t3")
    assert [c[0]["lastTransitionTime"] for c in (c1, c2, c3)] == ["t1", "t1", "t3"]


def test_history_row_mapper() -> None:
    run = {
        "metadata": {
            "name": "demo-x",
            "namespace": "ns",
            "labels": {"datapipelines.io/batch": "b"},
        },
        "spec": {"connectionName": "demo", "trigger": "batch"},
        "status": {
            "phase": "Failed",
            "attempts": 3,
            "startTime": "2026-11-30T08:00:00Z",
            "completionTime": "2026-11-30T08:00:10Z",
            "result": {"success": False, "error": "boom", "rowsInserted": 0},
        },
    }
    row = history.run_to_row(run)
    assert row is not None
    assert set(row) == set(history.COLUMNS)
    assert row["run_name"] == "demo-x" and row["batch"] == "b" and row["success"] is False
    assert row["duration_ms"] == 10000 and row["attempts"] == 3 and row["error"] == "boom"
    entry = history.row_to_entry(row)
    assert entry["started_at"] == "2026-11-30T08:00:00+00:00"
    assert history.run_to_row({**run, "status": {"phase": "Running"}}) is None
    assert "%(run_name)s" in history.INSERT_SQL and "ON CONFLICT" in history.INSERT_SQL
