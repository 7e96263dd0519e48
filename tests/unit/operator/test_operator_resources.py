"""datapipelines.resources as the operator reads it: models of apiserver objects, conditions,
time helpers, the manifests builders and the history row mapper."""

from __future__ import annotations

from datetime import UTC, datetime

from datapipelines.resources import history
from datapipelines.resources.connection import ConnectionSpec
from datapipelines.resources.manifests import batch_manifest, run_manifest, short_name
from datapipelines.resources.meta import (
    ConditionStatus,
    conditions_json,
    find_condition,
    with_condition,
)
from datapipelines.resources.run import PipelineRun, RunPhase, RunStatus, Trigger, is_terminal
from datapipelines.resources.times import duration_ms, format_time, parse_time
from tests.unit.operator.opkit import rest_spec

T1 = datetime(2026, 3, 2, 8, 0, 0, 123456, tzinfo=UTC)


def test_connection_spec_round_trip_with_defaults() -> None:
    spec = ConnectionSpec.model_validate(rest_spec())
    assert spec.schema_name == "demo_data" and spec.source.rest_api is not None
    out = spec.to_k8s()
    assert out["schemaName"] == "demo_data" and out["source"]["restApi"]["baseUrl"]
    assert out["retries"] == 2 and out["concurrencyPolicy"] == "Forbid"
    assert ConnectionSpec.model_validate(out) == spec


def test_run_status_model_reads_camel_case_and_ignores_unknown_keys() -> None:
    st = RunStatus.model_validate(
        {
            "phase": "Succeeded",
            "attempts": 2,
            "result": {"success": True, "rowsInserted": 5, "extra": 1},
            "somethingNew": True,
        }
    )
    assert st.phase is RunPhase.SUCCEEDED and st.result is not None and st.result.rows_inserted == 5


def test_run_phase_from_the_condition_when_phase_is_missing() -> None:
    run = PipelineRun.model_validate(
        {
            "metadata": {"name": "r"},
            "spec": {"connectionName": "demo"},
            "status": {
                "conditions": [
                    {
                        "type": "Succeeded",
                        "status": "False",
                        "reason": "Failed",
                        "lastTransitionTime": "2026-03-02T08:00:00Z",
                    }
                ]
            },
        }
    )
    assert run.phase is RunPhase.FAILED and run.terminal


def test_terminal_phases() -> None:
    assert is_terminal("Succeeded") and is_terminal("Failed") and is_terminal("Cancelled")
    assert not is_terminal("Queued") and not is_terminal("Running") and not is_terminal(None)


def test_condition_transition_time_only_changes_with_status() -> None:
    def t(minute: int) -> datetime:
        return datetime(2026, 3, 2, 8, minute, tzinfo=UTC)

    c1 = with_condition(
        [], type_="Ready", status=ConditionStatus.TRUE, reason="Valid", message="", now=t(1)
    )
    c2 = with_condition(
        c1, type_="Ready", status=ConditionStatus.TRUE, reason="Valid", message="x", now=t(2)
    )
    c3 = with_condition(
        c2,
        type_="Ready",
        status=ConditionStatus.FALSE,
        reason="Bad",
        message="",
        now=t(3),
        observed_generation=4,
    )
    times = [find_condition(c, "Ready").last_transition_time for c in (c1, c2, c3)]  # type: ignore[union-attr]
    assert times == [t(1), t(1), t(3)]
    (item,) = conditions_json(c3)
    assert item == {
        "type": "Ready",
        "status": "False",
        "reason": "Bad",
        "message": "",
        "lastTransitionTime": "2026-03-02T08:03:00Z",
        "observedGeneration": 4,
    }


def test_times() -> None:
    assert format_time(T1) == "2026-03-02T08:00:00Z"
    assert format_time(T1, micro=True) == "2026-03-02T08:00:00.123456Z"
    assert format_time(datetime(2026, 3, 2, 8)) == "2026-03-02T08:00:00Z"  # naive = UTC
    assert parse_time("2026-03-02T08:00:00Z") == datetime(2026, 3, 2, 8, tzinfo=UTC)
    assert parse_time("garbage") is None and parse_time(None) is None
    assert duration_ms("2026-03-02T08:00:00Z", "2026-03-02T08:00:10Z") == 10000
    assert duration_ms(None, T1) is None


def test_manifest_builders() -> None:
    m = run_manifest("demo", Trigger.API, namespace="ns1")
    assert m["metadata"]["generateName"] == "demo-" and "name" not in m["metadata"]
    assert m["metadata"]["labels"] == {
        "datapipelines.io/connection": "demo",
        "datapipelines.io/trigger": "api",
    }
    assert m["spec"] == {"connectionName": "demo", "trigger": "api"}
    long = run_manifest("c" * 51, Trigger.API)["metadata"]["generateName"]
    assert len(long) + 5 <= 57
    b = batch_manifest(["a", "b"], namespace="ns1")
    assert b["spec"] == {"connections": ["a", "b"]} and b["metadata"]["generateName"] == "batch-"
    assert short_name("abc", "12") == "abc-12"
    shortened = short_name("x" * 80, "29000000")
    assert len(shortened) <= 57 and shortened.endswith("-29000000")
    assert short_name("x" * 80, "29000000") == shortened


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
    assert history.run_to_row({**run, "status": {"phase": "Running"}}) is None
    assert "ON CONFLICT" in history.INSERT_SQL
