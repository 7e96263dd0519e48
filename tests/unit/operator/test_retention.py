"""retention.to_delete: finished runs beyond historyLimit, oldest first, never a held one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from datapipelines.operator.retention import FinishedRef, to_delete

T = datetime(2026, 3, 2, 8, tzinfo=UTC)


def done(name: str, minute: int, held: bool = False, sequence: int = 0) -> FinishedRef:
    return FinishedRef(
        name=name, finished=T + timedelta(minutes=minute), sequence=sequence, held=held
    )


RUNS = [done("a", 1), done("b", 3), done("e", 2), done("d", 4)]


@pytest.mark.parametrize(
    ("limit", "deleted"),
    [(0, ["a", "e", "b", "d"]), (1, ["a", "e", "b"]), (2, ["a", "e"]), (4, []), (10, [])],
)
def test_beyond_the_limit_oldest_first(limit: int, deleted: list[str]) -> None:
    assert to_delete(RUNS, limit) == deleted


def test_held_runs_are_kept_but_still_count() -> None:
    runs = [done("a", 1, held=True), done("b", 2), done("c", 3)]
    assert to_delete(runs, 0) == ["b", "c"]
    assert to_delete(runs, 1) == ["b"]


def test_same_finish_time_is_ordered_by_sequence_then_name() -> None:
    runs = [done("b", 1), done("a", 1), done("c", 1)]
    assert to_delete(runs, 1) == ["a", "b"]
    runs = [done("z", 1, sequence=5), done("a", 1, sequence=9), done("m", 1, sequence=7)]
    assert to_delete(runs, 1) == ["z", "m"]


def test_negative_limit_is_zero_and_empty_is_empty() -> None:
    assert to_delete(RUNS, -3) == to_delete(RUNS, 0)
    assert to_delete([], 0) == []
