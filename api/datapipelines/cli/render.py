"""Tables of the API's bodies for people (`-o json` prints the bodies themselves)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from rich import box
from rich.table import Table


def cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value) or "-"
    return str(value)


def seconds(ms: Any) -> str:
    return "-" if ms is None else f"{int(ms) / 1000:.1f} s"


def table(*columns: str, title: str | None = None) -> Table:
    t = Table(
        *columns,
        box=box.SIMPLE_HEAD,
        title=title,
        title_justify="left",
        pad_edge=False,
        show_edge=False,
    )
    return t


def fields(pairs: Iterable[tuple[str, Any]], title: str | None = None) -> Table:
    """A two-column table of `label: value`."""
    t = Table(box=None, show_header=False, title=title, title_justify="left", pad_edge=False)
    t.add_column(style="bold")
    t.add_column(overflow="fold")
    for label, value in pairs:
        t.add_row(label, value if isinstance(value, str) else cell(value))
    return t


def connections(rows: list[dict[str, Any]]) -> Table:
    t = table("NAME", "TYPE", "ENABLED", "SCHEMA", "POLICY", "SCHEDULE", "LAST RUN", "ACTIVE")
    for c in rows:
        t.add_row(
            c["name"],
            cell(c.get("type")),
            cell(c.get("enabled")),
            cell(c.get("schema_name")),
            cell(c.get("concurrency_policy")),
            cell(c.get("schedule")),
            cell(c.get("last_run_at")),
            cell(c.get("active_runs")),
        )
    return t


def connection_status(s: dict[str, Any]) -> Table:
    return fields(
        [
            ("name", s["name"]),
            ("type", s.get("type")),
            ("enabled", s.get("enabled")),
            ("schema", s.get("schema_name")),
            ("policy", s.get("concurrency_policy")),
            ("schedule", s.get("schedule")),
            ("active runs", s.get("active_runs")),
            ("last run", s.get("last_run_id")),
            ("last run at", s.get("last_run_at")),
            ("last success", s.get("last_run_success")),
            ("last error", s.get("last_run_error")),
            ("last duration", seconds(s.get("last_run_duration_ms"))),
            ("last attempts", s.get("last_run_attempts")),
        ]
    )


def outcome(result: Mapping[str, Any]) -> str:
    status = result.get("status")
    if status:
        return str(status)
    return "succeeded" if result.get("success") else "failed"


def run_result(result: Mapping[str, Any], *, connection: str | None = None) -> Table:
    return fields(
        [
            ("run", result.get("run_id")),
            ("connection", connection),
            ("status", outcome(result)),
            ("success", result.get("success")),
            ("rows inserted", result.get("rows_inserted")),
            ("records reported", result.get("records_reported")),
            ("duration", seconds(result.get("duration_ms"))),
            ("attempts", result.get("attempts")),
            ("error", result.get("error")),
        ],
        title="result",
    )


def table_counts(progress_counts: Mapping[str, Any] | None) -> Table | None:
    """Per table: records extracted and rows loaded (normalized for the destination)."""
    counts = progress_counts or {}
    extract = counts.get("extract") or {}
    loaded = counts.get("load") or counts.get("normalize") or {}
    names = sorted(set(extract) | set(loaded))
    if not names:
        return None
    t = table("TABLE", "RECORDS EXTRACTED", "ROWS LOADED")
    for name in names:
        t.add_row(name, cell(extract.get(name)), cell(loaded.get(name)))
    return t


def task(s: dict[str, Any]) -> Table:
    pairs: list[tuple[str, Any]] = [
        ("task", s.get("task_id")),
        ("kind", s.get("kind")),
        ("status", s.get("status")),
    ]
    if s.get("kind") == "single":
        progress = s.get("progress") or {}
        pairs += [
            ("connection", s.get("connection")),
            ("phase", s.get("phase")),
            ("trigger", s.get("trigger")),
            ("batch", s.get("batch")),
            ("attempts", s.get("attempts")),
            ("stage", progress.get("stage")),
            ("records extracted", progress.get("records_extracted")),
        ]
    else:
        pairs += [
            ("connections", s.get("connections")),
            ("current", s.get("current")),
            ("completed", s.get("completed")),
        ]
    pairs += [
        ("canceled", s.get("canceled")),
        ("started", s.get("started_at")),
        ("finished", s.get("finished_at")),
        ("error", s.get("error")),
    ]
    return fields(pairs)


def batch_runs(runs: list[dict[str, Any]] | None, title: str | None = None) -> Table:
    t = table("CONNECTION", "RUN", "PHASE", "SUCCESS", "ERROR", title=title)
    for r in runs or []:
        t.add_row(
            r.get("connection") or "-",
            cell(r.get("run_id")),
            cell(r.get("phase") or "Pending"),
            cell(r.get("success")),
            cell(r.get("error")),
        )
    return t


def history(entries: list[dict[str, Any]]) -> Table:
    t = table("RUN", "CONNECTION", "KIND", "TRIGGER", "STATUS", "ROWS", "DURATION", "FINISHED")
    for e in entries:
        t.add_row(
            e["run_id"],
            e.get("connection") or "-",
            cell(e.get("kind")),
            cell(e.get("trigger")),
            cell(e.get("status")),
            cell(e.get("rows_inserted")),
            seconds(e.get("duration_ms")),
            cell(e.get("finished_at")),
        )
    return t


def run_line(s: Mapping[str, Any]) -> str:
    """One line per state, for logs: `demo-items-x: Running · load · 3,000 records extracted`."""
    parts = [str(s.get("phase") or s.get("status"))]
    progress = s.get("progress") or {}
    if progress.get("stage"):
        parts.append(str(progress["stage"]))
    if progress.get("records_extracted") is not None:
        parts.append(f"{cell(progress['records_extracted'])} records extracted")
    tables = progress.get("tables") or {}
    if tables:
        parts.append(", ".join(f"{t} {cell(n)}" for t, n in sorted(tables.items())))
    return f"{s.get('task_id')}: " + " · ".join(parts)
