"""batch.step: the PipelineBatch state machine (one connection after another)."""

from __future__ import annotations

from typing import Any

from datapipelines.operator.batch import BatchRun, batch_run_name, step

NOW = "2026-11-30T08:00:00Z"


def s(
    conns: list[str],
    live: dict[str, BatchRun] | None = None,
    cancel: bool = False,
    previous: dict[str, Any] | None = None,
):
    return step(
        name="b1",
        connections=conns,
        cancel_requested=cancel,
        live=live or {},
        previous=previous,
        now=NOW,
    )


def run(conn: str, phase: str | None, cancel: bool = False) -> BatchRun:
    return BatchRun(conn, batch_run_name("b1", conn), phase, cancel)


def test_first_step_creates_the_first_run() -> None:
    st = s(["a", "b"])
    assert st.create == "a" and st.status["state"] == "running" and st.status["current"] == "a"
    assert st.status["completed"] == [] and st.status["startedAt"] == NOW
    assert st.status["runs"] == [{"connection": "a", "runName": "b1-a", "phase": None}]


def test_waits_while_current_is_active() -> None:
    st = s(["a", "b"], {"a": run("a", "Running")})
    assert st.create is None and st.status["current"] == "a"


def test_next_connection_after_any_outcome() -> None:
    st = s(["a", "b", "c"], {"a": run("a", "Failed")})
    assert st.create == "b" and st.status["completed"] == ["a"]


def test_order_is_spec_order() -> None:
    st = s(["c", "a", "b"], {"c": run("c", "Succeeded"), "a": run("a", "Succeeded")})
    assert st.create == "b" and st.status["completed"] == ["c", "a"]


def test_finished_when_all_ran() -> None:
    st = s(["a", "b"], {"a": run("a", "Succeeded"), "b": run("b", "Failed")})
    assert st.create is None and st.status["state"] == "finished" and st.status["current"] is None
    assert st.status["finishedAt"] == NOW and st.done


def test_empty_batch_finishes_at_once() -> None:
    st = s([])
    assert st.status["state"] == "finished"


def test_cancel_stops_current_and_starts_no_more() -> None:
    st = s(["a", "b"], {"a": run("a", "Running")}, cancel=True)
    assert st.cancel == ["b1-a"] and st.create is None and st.status["state"] == "running"
    st = s(["a", "b"], {"a": run("a", "Running", cancel=True)}, cancel=True)
    assert st.cancel == []
    st = s(["a", "b"], {"a": run("a", "Cancelled", cancel=True)}, cancel=True)
    assert (
        st.status["state"] == "cancelled" and st.create is None and st.status["completed"] == ["a"]
    )


def test_cancel_before_anything_ran() -> None:
    st = s(["a", "b"], cancel=True)
    assert st.status["state"] == "cancelled" and st.create is None


def test_vanished_run_counts_as_failed() -> None:
    previous = {
        "state": "running",
        "runs": [{"connection": "a", "runName": "b1-a", "phase": "Running"}],
        "startedAt": "x",
    }
    st = s(["a", "b"], previous=previous)
    assert st.status["runs"][0]["phase"] == "Failed" and st.create == "b"
    assert st.status["startedAt"] == "x"


def test_finished_batch_stays_finished() -> None:
    previous = {"state": "finished", "completed": ["a"], "runs": []}
    st = s(["a"], cancel=True, previous=previous)
    assert st.status["state"] == "finished" and st.create is None and st.cancel == []


def test_run_name_is_stable_and_short() -> None:
    assert batch_run_name("b1", "a") == "b1-a"
    long = batch_run_name("batch-" + "x" * 40, "c" * 40)
    assert len(long) <= 63 and long == batch_run_name("batch-" + "x" * 40, "c" * 40)
