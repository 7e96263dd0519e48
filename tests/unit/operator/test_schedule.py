"""schedule.py: cron ticks in a time zone, exact across daylight-saving changes. Pure."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from datapipelines.resources.manifests import scheduled_run_name
from datapipelines.resources.schedule import MAX_COUNTED, due, next_tick, ticks, validate

NY = "America/New_York"
BERLIN = "Europe/Berlin"


def z(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def hours(found: list[datetime]) -> list[str]:
    return [t.strftime("%d %H:%M") for t in found]


def day(expr: str, tz: str, start: datetime) -> list[datetime]:
    """Ticks of the 24 hours of UTC starting just before ``start``."""
    return ticks(expr, tz, after=start - timedelta(seconds=1), until=start + timedelta(hours=24))


# --------------------------------------------------------------------------- fall back


def test_hourly_in_new_york_on_fall_back_fires_every_real_hour() -> None:
    # 2025-11-02 02:00 EDT → 01:00 EST: local 00:00, 01:00 (EDT), 01:00 (EST), 02:00, 03:00
    found = ticks("0 * * * *", NY, after=z(2025, 11, 2, 3, 59), until=z(2025, 11, 2, 8, 0))
    assert hours(found) == ["02 04:00", "02 05:00", "02 06:00", "02 07:00", "02 08:00"]
    local_day = ticks("0 * * * *", NY, after=z(2025, 11, 2, 3, 59), until=z(2025, 11, 3, 4, 59))
    assert len(local_day) == 25


def test_daily_in_the_repeated_hour_fires_once_on_fall_back() -> None:
    found = ticks("30 1 * * *", NY, after=z(2025, 11, 1, 12), until=z(2025, 11, 3, 12))
    assert found == [z(2025, 11, 2, 5, 30), z(2025, 11, 3, 6, 30)]  # 01:30 EDT, then EST


def test_fall_back_in_berlin() -> None:
    # 2025-10-26 03:00 CEST → 02:00 CET
    assert ticks("30 2 * * *", BERLIN, after=z(2025, 10, 25, 12), until=z(2025, 10, 27, 12)) == [
        z(2025, 10, 26, 0, 30),
        z(2025, 10, 27, 1, 30),
    ]
    found = ticks("0 * * * *", BERLIN, after=z(2025, 10, 25, 23, 59), until=z(2025, 10, 26, 3))
    assert hours(found) == ["26 00:00", "26 01:00", "26 02:00", "26 03:00"]
    assert len(day("0 * * * *", BERLIN, z(2025, 10, 25, 22))) == 25


def test_half_hourly_on_fall_back_fires_both_repeated_half_hours() -> None:
    found = ticks("*/30 * * * *", NY, after=z(2025, 11, 2, 4, 59), until=z(2025, 11, 2, 7, 0))
    assert hours(found) == ["02 05:00", "02 05:30", "02 06:00", "02 06:30", "02 07:00"]


# --------------------------------------------------------------------------- spring forward


def test_a_wall_time_in_the_gap_fires_once_at_its_end() -> None:
    # 2025-03-09 02:00 EST → 03:00 EDT (07:00Z): 02:30 does not exist that day
    found = ticks("30 2 * * *", NY, after=z(2025, 3, 8, 12), until=z(2025, 3, 10, 12))
    assert found == [z(2025, 3, 9, 7, 0), z(2025, 3, 10, 6, 30)]


def test_hourly_on_spring_forward_neither_skips_nor_doubles() -> None:
    found = ticks("0 * * * *", NY, after=z(2025, 3, 9, 4, 59), until=z(2025, 3, 9, 9, 0))
    assert hours(found) == ["09 05:00", "09 06:00", "09 07:00", "09 08:00", "09 09:00"]
    gaps = {b - a for a, b in itertools.pairwise(found)}
    assert gaps == {timedelta(hours=1)}
    local_day = ticks("0 * * * *", NY, after=z(2025, 3, 9, 4, 59), until=z(2025, 3, 10, 3, 59))
    assert len(local_day) == 23 == len(set(local_day))


def test_spring_forward_in_berlin() -> None:
    # 2025-03-30 02:00 CET → 03:00 CEST (01:00Z)
    found = ticks("30 2 * * *", BERLIN, after=z(2025, 3, 29, 12), until=z(2025, 3, 31, 12))
    assert found == [z(2025, 3, 30, 1, 0), z(2025, 3, 31, 0, 30)]
    found = ticks("0 * * * *", BERLIN, after=z(2025, 3, 29, 23, 59), until=z(2025, 3, 30, 3))
    assert hours(found) == ["30 00:00", "30 01:00", "30 02:00", "30 03:00"]


def test_two_wall_times_landing_on_the_gap_end_fire_once() -> None:
    found = ticks("0,30 2,3 * * *", NY, after=z(2025, 3, 9, 0), until=z(2025, 3, 9, 12))
    # 02:00 and 02:30 do not exist → 07:00Z; 03:00 EDT is 07:00Z too; 03:30 EDT is 07:30Z
    assert found == [z(2025, 3, 9, 7, 0), z(2025, 3, 9, 7, 30)]


# --------------------------------------------------------------------------- due / next


def test_due_is_the_latest_tick_and_counts_the_skipped_ones() -> None:
    now = z(2026, 3, 2, 9, 5)
    d = due("*/15 * * * *", None, last=z(2026, 3, 2, 8, 0), created=z(2026, 1, 1), now=now)
    assert d is not None and d.tick == z(2026, 3, 2, 9, 0) and d.skipped == 3


def test_due_from_creation_and_exactly_at_the_tick() -> None:
    created = z(2026, 3, 2, 8, 1)
    assert due("*/15 * * * *", None, last=None, created=created, now=z(2026, 3, 2, 8, 14)) is None
    d = due("*/15 * * * *", None, last=None, created=created, now=z(2026, 3, 2, 8, 15))
    assert d is not None and d.tick == z(2026, 3, 2, 8, 15) and d.skipped == 0
    last = z(2026, 3, 2, 8, 15)
    assert due("*/15 * * * *", None, last=last, created=created, now=z(2026, 3, 2, 8, 29)) is None


def test_due_in_a_time_zone() -> None:
    # 02:00 in Berlin (UTC+1 in March before the change) is 01:00Z
    d = due("0 2 * * *", BERLIN, last=None, created=z(2026, 3, 2), now=z(2026, 3, 2, 1, 0, 30))
    assert d is not None and d.tick == z(2026, 3, 2, 1)
    assert due("0 2 * * *", "UTC", last=None, created=z(2026, 3, 2), now=z(2026, 3, 2, 1)) is None


def test_due_after_a_long_outage_is_the_latest_tick() -> None:
    now = z(2026, 3, 2, 8, 0, 30)
    d = due("* * * * *", None, last=now - timedelta(days=2), created=z(2026, 1, 1), now=now)
    assert d is not None and d.tick == z(2026, 3, 2, 8, 0)
    assert d.skipped >= MAX_COUNTED


def test_next_tick() -> None:
    assert next_tick("*/15 * * * *", None, after=z(2026, 3, 2, 8, 0)) == z(2026, 3, 2, 8, 15)
    assert next_tick("*/15 * * * *", None, after=z(2026, 3, 2, 8, 7)) == z(2026, 3, 2, 8, 15)
    assert next_tick("@daily", None, after=z(2026, 3, 2, 8)) == z(2026, 3, 3)
    assert next_tick("0 0 1 1 *", None, after=z(2026, 3, 2)) == z(2027, 1, 1)
    # across the spring-forward gap in its zone
    assert next_tick("30 2 * * *", NY, after=z(2025, 3, 9, 0)) == z(2025, 3, 9, 7)
    # a tick more than 400 days ahead (a leap day): look again 400 days later
    assert next_tick("0 0 29 2 *", None, after=z(2026, 3, 2)) == z(2027, 4, 6)
    assert next_tick("0 0 29 2 *", None, after=z(2027, 4, 6)) == z(2028, 2, 29)


NEVER = ["0 0 30 2 *", "0 0 31 4 *"]


@pytest.mark.parametrize("expr", NEVER)
def test_a_schedule_that_never_fires_has_no_ticks(expr: str) -> None:
    assert ticks(expr, None, after=z(2026, 3, 2), until=z(2027, 3, 2)) == []
    assert next_tick(expr, None, after=z(2026, 3, 2)) == z(2026, 3, 2) + timedelta(days=400)


@pytest.mark.parametrize("expr", NEVER)
def test_a_schedule_that_never_fires_is_invalid(expr: str) -> None:
    result = validate(expr, None)
    assert result is not None and result[0] == "InvalidSchedule"


def test_macros() -> None:
    d = due("@hourly", None, last=None, created=z(2026, 3, 2, 8, 1), now=z(2026, 3, 2, 9, 0, 10))
    assert d is not None and d.tick == z(2026, 3, 2, 9)
    assert next_tick("@weekly", None, after=z(2026, 3, 2)) == z(2026, 3, 8)  # a Sunday


@pytest.mark.parametrize(
    ("schedule", "tz", "reason"),
    [
        ("*/15 * * * *", None, None),
        ("@daily", BERLIN, None),
        ("0 2 * * MON-FRI", NY, None),
        ("61 * * * *", None, "InvalidSchedule"),
        ("* * * *", None, "InvalidSchedule"),
        ("* * * * * *", None, "InvalidSchedule"),
        ("@sometimes", None, "InvalidSchedule"),
        ("* * * * *", "Mars/Olympus", "InvalidTimeZone"),
        (None, "Mars/Olympus", "InvalidTimeZone"),
        (None, None, None),
    ],
)
def test_validate(schedule: str | None, tz: str | None, reason: str | None) -> None:
    result = validate(schedule, tz)
    assert (result[0] if result else None) == reason
    if reason == "InvalidTimeZone":
        assert result is not None and "spec.timeZone" in result[1]
    if reason == "InvalidSchedule":
        assert result is not None and "spec.schedule" in result[1]


def test_one_run_name_per_tick() -> None:
    tick = z(2026, 3, 2, 8, 15)
    name = scheduled_run_name("demo", tick)
    assert name == f"demo-{int(tick.timestamp()) // 60}"
    assert scheduled_run_name("demo", tick) == name
    assert name != scheduled_run_name("demo", tick + timedelta(minutes=15))
    long = scheduled_run_name("c" * 51, tick)
    assert len(long) <= 57 and long.endswith(str(int(tick.timestamp()) // 60))
