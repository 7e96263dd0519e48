"""One log schema for every component: a JSON object per line —

    {"ts": "2026-12-07T12:00:00.123Z", "level": "info", "logger": "…", "msg": "…", …extra}

UTC with milliseconds; the record's extra fields as they were given (`namespace`, `connection`,
`run`, `request_id`, …); `exc` for a traceback. kopf's object reference becomes `namespace` and
`object`. The text format is the same fields on one line for a person:
`<ts> <LEVEL> <logger>: <msg> key=value …`. A component that handles secrets passes `redact`,
applied to the message, the traceback and every string field.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}
_DROP = {"color_message", "k8s_skip", "k8s_ref", "settings"}  # uvicorn's, kopf's internals

Redact = Callable[[str], str]


def _same(text: str) -> str:
    return text


def timestamp(created: float) -> str:
    """RFC 3339 in UTC with milliseconds."""
    return (
        datetime.fromtimestamp(created, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def extra_fields(record: logging.LogRecord, redact: Redact = _same) -> dict[str, Any]:
    """The fields a record was given beyond the standard ones (kopf's reference included)."""
    fields: dict[str, Any] = {}
    ref = getattr(record, "k8s_ref", None)
    if isinstance(ref, dict):
        if ref.get("namespace"):
            fields["namespace"] = ref["namespace"]
        if ref.get("name"):
            fields["object"] = f"{str(ref.get('kind') or '').lower() or 'object'}/{ref['name']}"
    for key, value in vars(record).items():
        if key in _STANDARD or key in _DROP or key.startswith("_"):
            continue
        fields[key] = redact(value) if isinstance(value, str) else value
    return fields


class JsonFormatter(logging.Formatter):
    def __init__(self, redact: Redact = _same) -> None:
        super().__init__()
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": self.redact(record.getMessage()),
        }
        for key, value in extra_fields(record, self.redact).items():
            data.setdefault(key, value)
        if record.exc_info:
            data["exc"] = self.redact(self.formatException(record.exc_info))
        return json.dumps(data, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """`<ts> <LEVEL> <logger>: <msg> key=value …`, `ts` as in the JSON lines."""

    def __init__(self, redact: Redact = _same) -> None:
        super().__init__()
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        line = f"{timestamp(record.created)} {record.levelname} {record.name}: "
        line += record.getMessage()
        extras = " ".join(f"{k}={v}" for k, v in extra_fields(record, self.redact).items())
        if extras:
            line = f"{line} {extras}"
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return self.redact(line)
