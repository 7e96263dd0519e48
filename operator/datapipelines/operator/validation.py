"""Checks of a connection spec that the CRD schema cannot make. Pure.

The CRD already rejects most bad input at admission; this catches what only code can judge
(a cron that parses, a time zone that exists) and specs stored before a stricter CRD.
"""

from __future__ import annotations

from typing import Any

from datapipelines.resources.models import SOURCE_KEY, SourceType

from . import schedule


def validate_connection(spec: dict[str, Any]) -> tuple[str, str] | None:
    """``(reason, message)`` of the first problem, or None when the spec is usable."""
    try:
        source_type = SourceType(str(spec.get("type")))
    except ValueError:
        return ("InvalidType", f"spec.type {spec.get('type')!r} is not a known source type")
    source = spec.get("source") or {}
    wanted = SOURCE_KEY[source_type]
    present = [k for k in SOURCE_KEY.values() if source.get(k) is not None]
    if present != [wanted]:
        return (
            "InvalidSource",
            f"spec.source must hold exactly {wanted!r} for type {source_type.value!r}"
            f" (found {present or 'nothing'})",
        )
    return schedule.validate(spec.get("schedule"), spec.get("timeZone"))
