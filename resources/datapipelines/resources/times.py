"""Time helpers: RFC 3339 in UTC with a ``Z``, as the apiserver writes times. Pure."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def format_time(value: datetime | str | None, *, micro: bool = False) -> str | None:
    """``2026-11-30T08:00:00Z`` (second precision unless ``micro``); strings pass through."""
    if value is None or isinstance(value, str):
        return value
    dt = value if value.tzinfo else value.replace(tzinfo=UTC)
    dt = dt.astimezone(UTC)
    if not micro:
        dt = dt.replace(microsecond=0)
    return dt.isoformat().replace("+00:00", "Z")


def now_iso() -> str:
    """Now, second precision, ``Z``."""
    text = format_time(utcnow())
    assert text is not None
    return text


def parse_time(value: Any) -> datetime | None:
    """A timezone-aware datetime from an RFC 3339 string (or a datetime); None if unparsable."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def time_key(*values: Any) -> datetime:
    """The first parsable time among ``values`` (for sorting), else the epoch."""
    for value in values:
        parsed = parse_time(value)
        if parsed is not None:
            return parsed
    return EPOCH


def duration_ms(start: Any, end: Any) -> int | None:
    s, e = parse_time(start), parse_time(end)
    if s is None or e is None:
        return None
    return max(0, int((e - s).total_seconds() * 1000))
