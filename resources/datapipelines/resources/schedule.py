"""Cron schedules of connections, exact across daylight-saving changes. Pure (the clock is a
parameter).

A schedule names wall-clock times in its zone; each matching wall time becomes one instant:

* a wall time that does not exist (spring forward) fires at the end of the gap, the first
  instant after it — never skipped; if another tick lands on that instant it fires once;
* a wall time that exists twice (fall back) fires at its first occurrence, and at the second
  too when the hour field matches every hour (``0 * * * *`` fires every real hour: 25 times
  that day; ``30 1 * * *`` fires once) — never doubled.

A tick makes at most one run, named after the tick (``scheduled_run_name``), so a restarted
operator that looks at the same tick again gets 409 AlreadyExists instead of a duplicate.
Ticks missed while the operator was down (or the schedule suspended) are not silently
dropped: the latest missed tick makes one run and the number of skipped older ticks is
reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter  # type: ignore[import-untyped]

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
MAX_COUNTED = 1000
_SLACK = timedelta(hours=3)  # wider than any DST shift


def time_zone(name: str | None) -> tzinfo:
    """The IANA zone ``name`` (default UTC, which needs no tz database)."""
    if not name or name in ("UTC", "Etc/UTC"):
        return UTC
    return ZoneInfo(name)


def expression(schedule: str) -> str:
    expr = schedule.strip()
    return MACROS.get(expr.lower(), expr)


def validate(schedule: str | None, tz: str | None) -> tuple[str, str] | None:
    """``(reason, message)`` when the schedule or time zone is invalid, else None."""
    if tz:
        try:
            time_zone(tz)
        except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a tz directory
            return ("InvalidTimeZone", f"spec.timeZone {tz!r} is not a known IANA time zone")
    if schedule is None:
        return None
    expr = expression(schedule)
    if len(expr.split()) != 5 or not croniter.is_valid(expr):
        return (
            "InvalidSchedule",
            f"spec.schedule {schedule!r} is not a valid 5-field cron expression",
        )
    try:
        croniter(expr, datetime(2000, 1, 1, tzinfo=UTC)).get_next(datetime)
    except CroniterBadDateError:
        return ("InvalidSchedule", f"spec.schedule {schedule!r} never fires (no such date)")
    return None


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _every_hour(expr: str) -> bool:
    hours = croniter(expr).expanded[1]
    return hours == ["*"] or len(hours) == 24


def _gap_end(before: datetime, after: datetime, zone: tzinfo) -> datetime:
    """The instant in (before, after] where the zone's offset changes (binary search)."""
    lo, hi = before, after
    target = after.astimezone(zone).utcoffset()
    while hi - lo > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        if mid.astimezone(zone).utcoffset() == target:
            hi = mid
        else:
            lo = mid
    return hi.replace(microsecond=0)


def instants(wall: datetime, zone: tzinfo, every_hour: bool) -> list[datetime]:
    """The UTC instants of one naive wall-clock time in ``zone`` (rules in the module doc)."""
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    second = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) != wall:  # in a gap: fire at its end
        return [_gap_end(min(first, second), max(first, second), zone)]
    if first != second and every_hour:
        return [first, second]
    return [first]


def ticks(schedule: str, tz: str | None, *, after: datetime, until: datetime) -> list[datetime]:
    """Ticks in ``(after, until]``, oldest first (at most MAX_COUNTED + 1)."""
    zone = time_zone(tz)
    expr = expression(schedule)
    start, end = _aware(after).astimezone(UTC), _aware(until).astimezone(UTC)
    try:
        return _ticks(expr, zone, start, end)
    except CroniterBadDateError:  # a date that never comes (Feb 30): no tick, ever
        return []


def _ticks(expr: str, zone: tzinfo, start: datetime, end: datetime) -> list[datetime]:
    if zone is UTC:
        it = croniter(expr, start)
        out: list[datetime] = []
        while len(out) <= MAX_COUNTED:
            tick = it.get_next(datetime).astimezone(UTC)
            if tick > end:
                break
            out.append(tick)
        return out
    every_hour = _every_hour(expr)
    wall_start = (start.astimezone(zone) - _SLACK).replace(tzinfo=None)
    wall_end = (end.astimezone(zone) + _SLACK).replace(tzinfo=None)
    it = croniter(expr, wall_start)
    found: set[datetime] = set()
    while len(found) <= MAX_COUNTED:
        wall = it.get_next(datetime)
        if wall > wall_end:
            break
        found.update(t for t in instants(wall, zone, every_hour) if start < t <= end)
    return sorted(found)[: MAX_COUNTED + 1]


@dataclass(frozen=True)
class Due:
    tick: datetime
    """The latest tick not yet run (UTC)."""
    skipped: int
    """Older ticks since the last one that will not get a run of their own."""


def due(
    schedule: str, tz: str | None, *, last: datetime | None, created: datetime, now: datetime
) -> Due | None:
    """The latest tick in ``(last or created, now]``, or None if there is none."""
    found = ticks(schedule, tz, after=last or created, until=now)
    if not found:
        return None
    if len(found) > MAX_COUNTED:  # capped: the latest tick is nearer to now
        base = _aware(now)
        for span in (
            timedelta(hours=2),
            timedelta(days=2),
            timedelta(days=40),
            timedelta(days=400),
        ):
            recent = ticks(schedule, tz, after=base - span, until=now)
            if recent:
                return Due(tick=recent[-1], skipped=MAX_COUNTED)
    return Due(tick=found[-1], skipped=len(found) - 1)


def next_tick(schedule: str, tz: str | None, *, after: datetime) -> datetime:
    """The first tick after ``after`` (within a year; else a year later, to look again)."""
    horizon = _aware(after)
    for span in (timedelta(hours=6), timedelta(days=2), timedelta(days=40), timedelta(days=400)):
        found = ticks(schedule, tz, after=horizon, until=horizon + span)
        if found:
            return found[0]
    return horizon + timedelta(days=400)
