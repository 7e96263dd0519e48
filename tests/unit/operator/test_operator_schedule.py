"""schedule: due ticks with time zones, one run name per tick, no silent miss."""

from __future__ import annotations

from datetime import UTC, datetime

from datapipelines.operator.retention import FinishedRef, to_delete
from datapipelines.operator.schedule import due, next_tick, scheduled_run_name, validate
from datapipelines.operator.validation import validate_connection
from tests.unit.operator.opkit import connection


def t(h: int, m: int, s: int = 0, day: int = 30) -> datetime:
    return datetime(2026, 11, day, h, m, s, tzinfo=UTC)


def test_no_tick_yet() -> None:
    assert due("*/15 * * * *", None, last=None, created=t(8, 1), now=t(8, 14, 59)) is None


def test_tick_due_after_creation() -> None:
    d = due("*/15 * * * *", None, last=None, created=t(8, 1), now=t(8, 15, 3))
    assert d is not None and d.tick == t(8, 15) and d.skipped == 0


def test_tick_exactly_now_is_due() -> None:
    d = due("*/15 * * * *", None, last=t(8, 0), created=t(7, 0), now=t(8, 15))
    assert d is not None and d.tick == t(8, 15)


def test_same_tick_not_due_twice() -> None:
    assert due("*/15 * * * *", None, last=t(8, 15), created=t(7, 0), now=t(8, 29)) is None


def test_missed_ticks_run_latest_once_and_count_skipped() -> None:
    d = due("*/15 * * * *", None, last=t(8, 0), created=t(7, 0), now=t(9, 5))
    assert d is not None and d.tick == t(9, 0) and d.skipped == 3


def test_time_zone() -> None:
    # 02:00 in Berlin (UTC+1 in winter) is 01:00 UTC
    d = due("0 2 * * *", "Europe/Berlin", last=None, created=t(0, 0), now=t(1, 0, 30))
    assert d is not None and d.tick == t(1, 0)
    assert due("0 2 * * *", "UTC", last=None, created=t(0, 0), now=t(1, 0, 30)) is None


def test_macros() -> None:
    d = due("@hourly", None, last=None, created=t(8, 1), now=t(9, 0, 10))
    assert d is not None and d.tick == t(9, 0)
    assert next_tick("@daily", None, after=t(8, 0)).hour == 0


def test_run_name_per_tick_is_deterministic() -> None:
    name = scheduled_run_name("demo", t(8, 15))
    assert name == f"demo-{int(t(8, 15).timestamp()) // 60}"
    assert scheduled_run_name("demo", t(8, 15)) == name != scheduled_run_name("demo", t(8, 30))
    assert len(scheduled_run_name("c" * 52, t(8, 15))) <= 63


def test_validate() -> None:
    assert validate("*/15 * * * *", None) is None
    assert validate("@daily", "Europe/Berlin") is None
    assert validate("61 * * * *", None)[0] == "InvalidSchedule"
    assert validate("* * * *", None)[0] == "InvalidSchedule"
    assert validate("* * * * * *", None)[0] == "InvalidSchedule"
    assert validate("* * * * *", "Mars/Olympus")[0] == "InvalidTimeZone"


def test_validate_connection() -> None:
    assert validate_connection(connection()["spec"]) is None
    assert validate_connection(connection(type="sql_database")["spec"])[0] == "InvalidSource"
    assert validate_connection(connection(schedule="bad")["spec"])[0] == "InvalidSchedule"


def test_retention_keeps_newest_finished_never_active() -> None:
    runs = [
        FinishedRef("a", "Succeeded", "2026-11-30T08:01:00Z"),
        FinishedRef("b", "Failed", "2026-11-30T08:03:00Z"),
        FinishedRef("c", "Running", ""),
        FinishedRef("d", "Queued", ""),
        FinishedRef("e", "Cancelled", "2026-11-30T08:02:00Z"),
    ]
    assert to_delete(runs, 2) == ["a"]
    assert to_delete(runs, 0) == ["b", "e", "a"]
    assert to_delete(runs, 10) == []
