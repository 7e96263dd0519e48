"""Reconcile decisions of one batch key (``reconcile/batch.py`` over ``batchstate.step``): one
connection after another, cancel, vanished runs, the TTL. Pure, at a fixed ``now``."""

from __future__ import annotations

from typing import Any

import pytest

from datapipelines.operator.batchstate import recorded_terminal, step
from datapipelines.operator.reconcile import batch as batch_reconcile
from datapipelines.operator.reconcile.actions import (
    CreateRun,
    DeleteBatch,
    PatchBatchStatus,
)
from datapipelines.resources import LABEL_BATCH
from datapipelines.resources.batch import BatchState
from datapipelines.resources.manifests import batch_run_name
from tests.unit.operator.opkit import (
    NOW,
    NS,
    World,
    at,
    batch,
    batch_body,
    condition,
    decide_batch,
    describe,
    finished_status,
    of_type,
    run,
    run_body,
    running_status,
    settings,
    store_of,
    ts,
)


def only(items: list[Any]) -> Any:
    assert len(items) == 1, items
    return items[0]


def batch_run(conn: str, phase: str | None = None, **kw: Any) -> dict[str, Any]:
    name = batch_run_name("b1", conn)
    if phase in ("Succeeded", "Failed", "Cancelled"):
        kw.setdefault("status", finished_status(phase))
    elif phase == "Running":
        kw.setdefault("status", running_status(name))
    return run_body(name, conn, batch="b1", trigger="batch", **kw)


def status_patch(decision: Any) -> dict[str, Any]:
    return only(of_type(decision, PatchBatchStatus)).patch


def running_batch(*runs: tuple[str, str | None], cancel: bool = False) -> dict[str, Any]:
    refs = [{"connection": c, "runName": batch_run_name("b1", c), "phase": p} for c, p in runs]
    return batch_body(
        "b1",
        ["a", "b"],
        cancel=cancel,
        status={"state": "running", "current": runs[-1][0], "runs": refs, "startedAt": ts(-100)},
    )


def test_the_first_connection_gets_a_run_with_a_deterministic_name() -> None:
    d = decide_batch(batch_body("b1", ["a", "b"]))
    assert describe(d) == [("CreateRun", "b1-a"), ("PatchBatchStatus", "b1")]
    create = d.actions[0]
    assert isinstance(create, CreateRun)
    meta = create.manifest["metadata"]
    assert meta["name"] == batch_run_name("b1", "a") == "b1-a"
    assert meta["namespace"] == NS and meta["labels"][LABEL_BATCH] == "b1"
    assert create.manifest["spec"] == {"connectionName": "a", "trigger": "batch"}
    assert [e.reason for e in create.events] == ["RunCreated"]
    patch = status_patch(d)
    assert patch["state"] == "running" and patch["current"] == "a"
    assert patch["completed"] == []
    assert patch["runs"] == [{"connection": "a", "runName": "b1-a", "phase": None}]
    assert patch["startedAt"] == ts(NOW) and patch["finishedAt"] is None
    cond = condition(patch, "Complete")
    assert (cond["status"], cond["reason"], cond["message"]) == ("Unknown", "Running", "running a")


def test_a_long_batch_and_connection_name_still_make_a_valid_run_name() -> None:
    name = batch_run_name("b" * 40, "c" * 51)
    assert len(name) <= 57 and name == batch_run_name("b" * 40, "c" * 51)


def test_the_next_connection_runs_only_after_the_first_one_ended() -> None:
    d = decide_batch(running_batch(("a", "Running")), batch_run("a", "Running"))
    assert not of_type(d, CreateRun)
    patch = status_patch(d)  # the live phase is recorded
    assert patch["runs"][0]["phase"] == "Running"

    d = decide_batch(running_batch(("a", "Running")), batch_run("a", "Failed"))
    assert only(of_type(d, CreateRun)).manifest["metadata"]["name"] == "b1-b"
    patch = status_patch(d)
    assert patch["state"] == "running" and patch["current"] == "b"
    assert patch["completed"] == ["a"]
    assert [(r["connection"], r["phase"]) for r in patch["runs"]] == [("a", "Failed"), ("b", None)]


def test_the_batch_finishes_when_every_connection_ran() -> None:
    d = decide_batch(
        running_batch(("a", "Succeeded"), ("b", "Running")),
        batch_run("a", "Succeeded"),
        batch_run("b", "Failed"),
    )
    patch = status_patch(d)
    assert patch["state"] == "finished" and patch["current"] is None
    assert patch["completed"] == ["a", "b"]
    assert patch["finishedAt"] == ts(NOW)
    cond = condition(patch, "Complete")
    assert (cond["status"], cond["reason"]) == ("True", "Finished")
    assert [e.reason for e in of_type(d, PatchBatchStatus)[0].events] == ["Finished"]
    assert d.requeue_after == pytest.approx(settings().batch_ttl_seconds)


def test_cancel_stops_the_current_run_and_starts_no_more() -> None:
    d = decide_batch(running_batch(("a", "Running"), cancel=True), batch_run("a", "Running"))
    assert not of_type(d, CreateRun)
    assert d.wake == {("conn", NS, "a")}
    assert not of_type(d, PatchBatchStatus) or status_patch(d)["state"] == "running"

    d = decide_batch(running_batch(("a", "Running"), cancel=True), batch_run("a", "Cancelled"))
    # recording a's outcome wakes its connection (retention may go on), nothing else
    assert not of_type(d, CreateRun) and d.wake == {("conn", NS, "a")}
    patch = status_patch(d)
    assert patch["state"] == "cancelled" and patch["current"] is None
    assert patch["completed"] == ["a"] and patch["finishedAt"] == ts(NOW)
    cond = condition(patch, "Complete")
    assert (cond["status"], cond["reason"]) == ("False", "Cancelled")
    assert [e.reason for e in of_type(d, PatchBatchStatus)[0].events] == ["Cancelled"]


def test_a_batch_cancelled_before_its_first_run_is_cancelled_at_once() -> None:
    d = decide_batch(batch_body("b1", ["a", "b"], cancel=True))
    assert not of_type(d, CreateRun)
    assert status_patch(d)["state"] == "cancelled"


def test_a_run_that_vanished_before_it_ended_counts_failed() -> None:
    d = decide_batch(running_batch(("a", "Running")))  # b1-a is gone
    patch = status_patch(d)
    assert patch["runs"][0] == {"connection": "a", "runName": "b1-a", "phase": "Failed"}
    assert patch["completed"] == ["a"]
    assert only(of_type(d, CreateRun)).manifest["metadata"]["name"] == "b1-b"


def test_a_vanished_run_that_had_ended_keeps_its_phase() -> None:
    remembered = running_batch(("a", "Succeeded"), ("b", "Running"))["status"]
    result = step(batch(status=remembered), [run("b1-b", "b", batch="b1")], NOW)
    assert [(r.connection, r.phase) for r in result.status.runs] == [
        ("a", "Succeeded"),
        ("b", None),
    ]
    assert result.status.completed == ["a"] and result.create is None


def done(state: str, finished: float, **status: Any) -> dict[str, Any]:
    return batch_body(
        "b1",
        ["a", "b"],
        status={
            "state": state,
            "completed": ["a", "b"],
            "runs": [
                {"connection": "a", "runName": "b1-a", "phase": "Succeeded"},
                {"connection": "b", "runName": "b1-b", "phase": "Succeeded"},
            ],
            "startedAt": ts(finished - 100),
            "finishedAt": ts(finished),
            "conditions": [
                {
                    "type": "Complete",
                    "status": "True",
                    "reason": "Finished",
                    "message": "all 2 connection(s) ran",
                    "lastTransitionTime": ts(finished),
                    "observedGeneration": 1,
                }
            ],
            "observedGeneration": 1,
            **status,
        },
    )


def test_a_finished_batch_is_deleted_after_its_ttl() -> None:
    config = settings(batch_ttl_seconds=3600)
    d = decide_batch(done("finished", -100), config=config)
    assert d.actions == []
    assert d.requeue_after == pytest.approx(3500)

    d = decide_batch(done("finished", -3600), config=config)
    delete = only(d.actions)
    assert isinstance(delete, DeleteBatch) and delete.batch.metadata.name == "b1"
    assert "3600 s" in delete.why


def test_a_missing_batch_decides_nothing() -> None:
    d = decide_batch(batch_run("a", "Running"))
    assert d.actions == [] and d.requeue_after is None


def test_a_batch_reaches_a_fixed_point_and_records_each_outcome() -> None:
    w = World(batch_body("b1", ["a", "b"]))
    d = w.decide_batch()
    w.apply(d)
    assert w.decide_batch().actions == []  # nothing changed: nothing written
    run_a = w.get("PipelineRun", "b1-a")
    assert run_a is not None
    run_a["status"] = finished_status("Succeeded")
    d = w.decide_batch()
    w.apply(d)
    assert describe(d) == [("CreateRun", "b1-b"), ("PatchBatchStatus", "b1")]
    assert w.decide_batch().actions == []
    assert recorded_terminal(batch(status=w.get("PipelineBatch", "b1")["status"]), "b1-a")


def test_batch_decisions_use_runs_from_the_store_by_batch_label() -> None:
    store = store_of(batch_body(), batch_run("a", "Running"), run_body("b1-a-look-alike", "a"))
    state = batch_reconcile.gather(store, NS, "b1")
    assert [r.name for r in state.runs] == ["b1-a"]


def test_deciding_on_a_done_batch_does_not_mutate_it_and_fixes_its_condition() -> None:
    body = done("finished", -100, conditions=[])
    store = store_of(body)
    state = batch_reconcile.gather(store, NS, "b1")
    assert state.batch is not None
    before = state.batch.model_copy(deep=True)
    d = batch_reconcile.decide(state, settings(), NOW)
    assert state.batch == before
    assert condition(status_patch(d), "Complete")["status"] == "True"


def test_recording_a_run_outcome_wakes_its_connection() -> None:
    d = decide_batch(running_batch(("a", "Running")), batch_run("a", "Succeeded"))
    assert ("conn", NS, "a") in d.wake


def test_the_batch_step_is_level_based() -> None:
    b = batch(status=running_batch(("a", "Running"))["status"])
    runs = [run("b1-a", "a", batch="b1", status=finished_status("Succeeded"))]
    first, second = step(b, runs, NOW), step(b, runs, at(60))
    assert first.create == second.create == "b"
    assert first.status.state is BatchState.RUNNING
    assert first.status.model_dump() == second.status.model_dump()
