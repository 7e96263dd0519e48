"""The runner's report of its run (``status.runnerResult`` and the termination message), and
how it is cut to size. The model is the shared contract's ``RunnerResult``."""

from __future__ import annotations

import json
from typing import Any

from pydantic import Field

from datapipelines.resources.podcontract import TERMINATION_MESSAGE_LIMIT
from datapipelines.resources.run import RunnerResult

#: Bytes of report kept in status.runnerResult: enough for a readable summary of many tables,
#: small enough that thousands of retained runs stay cheap in etcd (the pod log has it all).
STATUS_REPORT_LIMIT = 16 * 1024
MARKER = "…[report truncated: {n} more bytes]"


class RunResult(RunnerResult):
    """The runner's report, with the counters it always knows (0 until counted)."""

    duration_ms: int = 0
    rows_inserted: int = 0
    records_reported: int = 0
    progress_counts: dict[str, dict[str, int]] = Field(default_factory=dict)
    report: str = ""
    report_truncated: bool = False

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


def cut_report(report: str, limit_bytes: int) -> tuple[str, bool]:
    """`report` cut to at most `limit_bytes` UTF-8 bytes, ending with an explicit marker."""
    data = report.encode("utf-8")
    if len(data) <= limit_bytes:
        return report, False
    keep = max(0, limit_bytes - len(MARKER.format(n=len(data)).encode("utf-8")))
    while True:
        head = data[:keep].decode("utf-8", errors="ignore")
        cut = head + MARKER.format(n=len(data) - len(head.encode("utf-8")))
        if len(cut.encode("utf-8")) <= limit_bytes or keep == 0:
            return cut, True
        keep -= 1


def _dumps(body: dict[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def with_report_limit(result: RunResult, limit_bytes: int = STATUS_REPORT_LIMIT) -> RunResult:
    report, cut = cut_report(result.report, limit_bytes)
    if not cut:
        return result
    return result.model_copy(update={"report": report, "report_truncated": True})


def termination_message(result: RunResult, limit: int = TERMINATION_MESSAGE_LIMIT) -> bytes:
    """The result as one JSON object of at most `limit` bytes.

    The report is cut first (ending with the marker, `reportTruncated: true`). If the rest alone
    is still too big (hundreds of tables), per-stage table counts are dropped (normalize, then
    extract), then the schema changes, then the load counts, then the error is shortened.
    The loaded schema is never in it. status.runnerResult keeps everything.
    """
    body = result.to_dict()
    body.pop("loadedSchema", None)  # status.runnerResult only: neither fits in 4 KiB
    body.pop("log", None)
    encoded = _dumps(body)
    if len(encoded) <= limit:
        return encoded
    counts = dict(body.get("progressCounts") or {})
    for step in ("report", "normalize", "extract", "schemaChanges", "load", "error"):
        if step in STAGES_TO_DROP:
            counts.pop(step, None)
            body["progressCounts"] = counts
        elif step == "schemaChanges":
            body["schemaChanges"] = None
        elif step == "error" and body.get("error"):
            body["error"] = str(body["error"])[:512]
        fitted = _fit_report(body, result.report, limit)
        if fitted is not None:
            return fitted
    body["report"], body["reportTruncated"] = "", True
    return _dumps(body)[:limit]


STAGES_TO_DROP = ("normalize", "extract", "load")


def _fit_report(body: dict[str, Any], report: str, limit: int) -> bytes | None:
    """`body` with as much of `report` as fits in `limit` bytes, or None if nothing fits."""
    body["report"], body["reportTruncated"] = report, False
    if len(_dumps(body)) <= limit:
        return _dumps(body)
    body["report"], body["reportTruncated"] = "", True
    room = limit - len(_dumps(body))
    if room <= len(MARKER.format(n=len(report.encode("utf-8")))):
        return None
    empty = limit - room
    budget = room
    while budget > 0:  # JSON escaping makes the text longer: shrink until it fits
        body["report"], _ = cut_report(report, budget)
        encoded = _dumps(body)
        if len(encoded) <= limit:
            return encoded
        escaped = len(encoded) - empty  # bytes the report takes once escaped
        budget = min(budget - 1, budget * room // escaped)
    return None


def write_termination_message(result: RunResult, path: str) -> bool:
    """Writes the termination message; False (never an exception) when it cannot."""
    try:
        with open(path, "wb") as f:
            f.write(termination_message(result))
        return True
    except OSError:
        return False
