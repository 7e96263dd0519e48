"""concurrency.plan: which runs of one connection start, wait, fail or are cancelled. Pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from datapipelines.operator.concurrency import RunRef, plan
from datapipelines.resources.connection import ConcurrencyPolicy
from datapipelines.resources.run import RunPhase

FORBID, QUEUE, REPLACE = (
    ConcurrencyPolicy.FORBID,
    ConcurrencyPolicy.QUEUE,
    ConcurrencyPolicy.REPLACE,
)
T = datetime(2026, 3, 2, 8, tzinfo=UTC)


def ref(
    name: str, second: int = 0, seq: int = 0, phase: RunPhase | None = None, cancel: bool = False
) -> RunRef:
    return RunRef(name, (T + timedelta(seconds=second), seq, name), phase, cancel)


RUNNING = RunPhase.RUNNING


@pytest.mark.parametrize("policy", list(ConcurrencyPolicy))
def test_a_single_pending_run_starts(policy: ConcurrencyPolicy) -> None:
    p = plan(policy, [ref("a")])
    assert p.start == ["a"] and not (p.queue or p.fail or p.cancel or p.stop)
    assert p.active == ["a"]


@pytest.mark.parametrize("policy", list(ConcurrencyPolicy))
def test_finished_runs_are_ignored(policy: ConcurrencyPolicy) -> None:
    p = plan(policy, [ref("old", phase=RunPhase.FAILED), ref("new", 1)])
    assert p.start == ["new"] and p.active == ["new"]


@pytest.mark.parametrize(
    ("policy", "runs", "start", "queue", "fail", "cancel", "stop"),
    [
        pytest.param(
            FORBID,
            [ref("a", phase=RUNNING), ref("b", 1)],
            [],
            [],
            ["b"],
            [],
            [],
            id="forbid-while-running",
        ),
        pytest.param(
            FORBID, [ref("a"), ref("b", 1)], ["a"], [], ["b"], [], [], id="forbid-two-pending"
        ),
        pytest.param(
            QUEUE,
            [ref("a", phase=RUNNING), ref("b", 1), ref("c", 2)],
            [],
            ["b", "c"],
            [],
            [],
            [],
            id="queue-behind-running",
        ),
        pytest.param(
            QUEUE,
            [ref("c", 2), ref("a"), ref("b", 1)],
            ["a"],
            ["b", "c"],
            [],
            [],
            [],
            id="queue-in-request-order",
        ),
        pytest.param(
            REPLACE,
            [ref("a", phase=RUNNING), ref("b", 1), ref("c", 2)],
            [],
            ["c"],
            [],
            ["b"],
            ["a"],
            id="replace-newest-wins",
        ),
        pytest.param(
            REPLACE,
            [ref("b", 1), ref("c", 2)],
            ["c"],
            [],
            [],
            ["b"],
            [],
            id="replace-without-running",
        ),
        pytest.param(
            REPLACE, [ref("a", phase=RUNNING)], [], [], [], [], [], id="replace-nothing-new"
        ),
        pytest.param(
            QUEUE,
            [ref("a", cancel=True), ref("b", 1)],
            ["b"],
            [],
            [],
            ["a"],
            [],
            id="cancel-requested-pending",
        ),
        pytest.param(
            REPLACE,
            [ref("a", phase=RUNNING, cancel=True), ref("b", 1)],
            [],
            ["b"],
            [],
            [],
            [],
            id="replace-does-not-stop-a-cancelling-run",
        ),
        pytest.param(
            FORBID,
            [ref("a", phase=RunPhase.QUEUED), ref("b", 1)],
            ["a"],
            [],
            ["b"],
            [],
            [],
            id="queued-is-pending",
        ),
    ],
)
def test_plan(
    policy: ConcurrencyPolicy,
    runs: list[RunRef],
    start: list[str],
    queue: list[str],
    fail: list[str],
    cancel: list[str],
    stop: list[str],
) -> None:
    p = plan(policy, runs)
    assert p.start == start
    assert [n for n, _ in p.queue] == queue
    assert [n for n, _ in p.fail] == fail
    assert [n for n, _ in p.cancel] == cancel
    assert [n for n, _ in p.stop] == stop


def test_messages_name_the_blocker_and_the_policy() -> None:
    p = plan(FORBID, [ref("a", phase=RUNNING), ref("b", 1)])
    assert p.fail == [
        (
            "b",
            "ConcurrencyForbidden: run a of this connection is active and the concurrency "
            "policy is Forbid",
        )
    ]
    p = plan(QUEUE, [ref("a", phase=RUNNING), ref("b", 1)])
    assert p.queue == [
        ("b", "waiting for run a of this connection to end (concurrency policy Queue)")
    ]
    p = plan(REPLACE, [ref("a", phase=RUNNING), ref("b", 1), ref("c", 2)])
    assert p.cancel == [("b", "Replaced: replaced by the newer run c")]
    assert p.stop == [("a", "Replaced: replaced by the newer run c")]
    p = plan(QUEUE, [ref("a", cancel=True)])
    assert p.cancel == [("a", "CancelRequested: cancelled before it started")]


def test_order_is_time_then_sequence_then_name() -> None:
    runs = [ref("z", 0, seq=5), ref("a", 0, seq=7), ref("m", 0, seq=7)]
    p = plan(QUEUE, runs)
    assert p.start == ["z"] and [n for n, _ in p.queue] == ["a", "m"]
    assert p.active == ["z", "a", "m"]


def test_the_plan_is_level_based() -> None:
    runs = [ref("a", phase=RUNNING), ref("b", 1), ref("c", 2)]
    assert plan(REPLACE, runs) == plan(REPLACE, list(reversed(runs)))


def test_active_leaves_out_what_ends_now() -> None:
    p = plan(FORBID, [ref("a", phase=RUNNING), ref("b", 1), ref("c", 2, cancel=True)])
    assert p.active == ["a"]
