"""Cron schedules of connections. Pure (the clock is a parameter).

Rules: a tick makes at most one run, named deterministically after the tick
(:func:`scheduled_run_name`), so a restarted operator that looks at the same tick again gets
409 Already Exists instead of a duplicate. Ticks missed while the operator was down (or
the schedule was suspended) are not silently dropped: the latest missed tick makes one run
and the number of skipped older ticks is reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter  # type: ignore[import-untyped]

from .jobs import short_name

MACROS = frozenset(
    {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
)
MAX_COUNTED = 1000


def time_zone(name: str | None) -> tzinfo:
    """The IANA zone ``name`` (default UTC, which needs no tz database)."""
    if not name or name in ("UTC", "Etc/UTC"):
        return UTC
    return ZoneInfo(name)


def validate(schedule: str | None, tz: str | None) -> tuple[str, str] | None:
    """``(reason, message)`` when the schedule or time zone is invalid, else None."""
    if tz:
        try:
            time_zone(tz)
        except (ZoneInfoNotFoundError, ValueError):
            return ("InvalidTimeZone", f"spec.timeZone {tz!r} is not a known IANA time zone")
    if schedule is None:
        return None
    expr = schedule.strip()
    if expr.lower() in MACROS:
        return None
    if len(expr.split()) != 5 or not croniter.is_valid(expr):
        return (
            "InvalidSchedule",
            f"spec.schedule {schedule!r} is not a valid 5-field cron expression",
        )
    return None


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


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
    zone = time_zone(tz)
    base = _aware(last or created).astimezone(zone)
    now_local = _aware(now).astimezone(zone)
    latest = croniter(schedule.strip(), now_local + timedelta(seconds=1)).get_prev(datetime)
    if latest <= base:
        return None
    count = 0
    it = croniter(schedule.strip(), base)
    while count < MAX_COUNTED:
        nxt = it.get_next(datetime)
        if nxt > now_local:
            break
        count += 1
    return Due(tick=latest.astimezone(UTC), skipped=max(0, count - 1))


def next_tick(schedule: str, tz: str | None, *, after: datetime) -> datetime:
    zone = time_zone(tz)
    return croniter(schedule.strip(), _aware(after).astimezone(zone)).get_next(datetime)


def scheduled_run_name(connection: str, tick: datetime) -> str:
    """``<connection>-<unix minute of the tick>``: one name per tick, forever."""
    minute = int(_aware(tick).timestamp()) // 60
    return short_name(connection, str(minute))
