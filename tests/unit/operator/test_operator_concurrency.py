"""concurrency.plan: Forbid / Queue / Replace over all runs of one connection."""

from __future__ import annotations

from datapipelines.operator.concurrency import RunRef, plan


def r(name: str, t: int, phase: str | None = None, cancel: bool = False) -> RunRef:
    return RunRef(
        name=name, created=f"2026-11-30T08:00:{t:02d}Z", phase=phase, cancel_requested=cancel
    )


def test_first_run_starts_under_every_policy() -> None:
    for policy in ("Forbid", "Queue", "Replace"):
        p = plan(policy, [r("a", 1)])
        assert p.start == ["a"] and p.active == ["a"]


def test_forbid_fails_a_second_run() -> None:
    p = plan("Forbid", [r("a", 1, "Running"), r("b", 2)])
    assert p.start == [] and [n for n, _ in p.fail] == ["b"]
    assert p.fail[0][1].startswith("ConcurrencyForbidden") and "a" in p.fail[0][1]
    assert p.active == ["a"]


def test_forbid_two_new_runs_at_once_oldest_wins() -> None:
    p = plan("Forbid", [r("b", 2), r("a", 1)])
    assert p.start == ["a"] and [n for n, _ in p.fail] == ["b"]


def test_queue_keeps_request_order() -> None:
    runs = [r("c", 3), r("a", 1, "Running"), r("b", 2, "Queued"), r("d", 3)]
    p = plan("Queue", runs)
    assert p.start == [] and p.queue == ["b", "c", "d"]
    assert p.active == ["a", "b", "c", "d"]


def test_queue_same_timestamp_orders_by_name() -> None:
    p = plan("Queue", [r("y", 1), r("x", 1)])
    assert p.start == ["x"] and p.queue == ["y"]


def test_queue_next_starts_when_running_one_finished() -> None:
    p = plan("Queue", [r("a", 1, "Succeeded"), r("b", 2, "Queued"), r("c", 3, "Queued")])
    assert p.start == ["b"] and p.queue == ["c"]


def test_replace_stops_running_and_waits() -> None:
    p = plan("Replace", [r("a", 1, "Running"), r("b", 2)])
    assert [n for n, _ in p.stop] == ["a"] and p.queue == ["b"] and p.start == []
    assert p.stop[0][1].startswith("Replaced")


def test_replace_newest_pending_wins_older_pending_cancelled() -> None:
    p = plan("Replace", [r("a", 1, "Running", cancel=True), r("b", 2, "Queued"), r("c", 3)])
    assert [n for n, _ in p.cancel] == ["b"] and p.queue == ["c"] and p.stop == []


def test_replace_starts_once_nothing_runs() -> None:
    p = plan("Replace", [r("a", 1, "Cancelled"), r("c", 3, "Queued")])
    assert p.start == ["c"]


def test_cancel_requested_before_start_is_cancelled_without_job() -> None:
    p = plan("Queue", [r("a", 1, "Running"), r("b", 2, "Queued", cancel=True), r("c", 3)])
    assert [n for n, _ in p.cancel] == ["b"] and p.queue == ["c"]
    assert p.active == ["a", "c"]


def test_terminal_runs_are_ignored() -> None:
    p = plan("Forbid", [r("a", 1, "Failed"), r("b", 2, "Cancelled"), r("c", 3)])
    assert p.start == ["c"] and p.fail == []


def test_plan_is_idempotent_for_running() -> None:
    p = plan("Queue", [r("a", 1, "Running")])
    assert p.start == [] and p.queue == [] and p.active == ["a"]
