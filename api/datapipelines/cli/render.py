"""Tables of the API's bodies for people (`-o json` prints the bodies themselves)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
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


def table(*columns: str, title: str | None = None, headers: bool = True) -> Table:
    t = Table(
        *columns,
        box=box.SIMPLE_HEAD,
        title=title,
        title_justify="left",
        pad_edge=False,
        show_edge=False,
        show_header=headers,
    )
    return t


def listing(
    columns: Sequence[str],
    rows: Iterable[Sequence[str]],
    *,
    ids: int = 1,
    headers: bool = True,
    title: str | None = None,
    width: int | None = None,
    drop: Sequence[str] = (),
) -> Table:
    """A table whose first `ids` columns are never cut (ids are for copying into the next
    command). Too wide for `width`, it drops the columns named in `drop`, in that order, until
    it fits (`-o wide` and `-o json` still have them); what still does not fit wraps."""
    rows = [list(r) for r in rows]
    keep = list(range(len(columns)))

    def needed() -> int:
        widths = [
            max([len(r[i]) for r in rows] + [len(columns[i]) if headers else 1]) for i in keep
        ]
        return sum(widths) + 2 * (len(keep) - 1)

    for name in drop:
        if width is None or needed() <= width:
            break
        keep.remove(columns.index(name))
    t = table(*(columns[i] for i in keep), title=title, headers=headers)
    for pos, column in enumerate(t.columns):
        i = keep[pos]
        if i < ids:
            column.no_wrap = True
            column.min_width = max([len(r[i]) for r in rows] + [len(columns[i]) if headers else 1])
        else:
            column.overflow = "fold"
    for r in rows:
        t.add_row(*(r[i] for i in keep))
    return t


def wall_clock(entry: Mapping[str, Any]) -> str:
    """How long a run took, start to end (queued time and every attempt included), else the
    runner's own duration."""
    start, end = _when(entry.get("started_at")), _when(entry.get("finished_at"))
    if start is not None and end is not None and end >= start:
        return duration((end - start).total_seconds())
    return seconds(entry.get("duration_ms"))


def duration(total: float) -> str:
    """`0.4 s`, `35.2 s`, `4m 05s`, `2h 03m`."""
    if total < 60:
        return f"{total:.1f} s"
    minutes, secs = divmod(int(total), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def _when(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def fields(pairs: Iterable[tuple[str, Any]], title: str | None = None) -> Table:
    """A two-column table of `label: value`."""
    t = Table(box=None, show_header=False, title=title, title_justify="left", pad_edge=False)
    t.add_column(style="bold")
    t.add_column(overflow="fold")
    for label, value in pairs:
        t.add_row(label, value if isinstance(value, str) else cell(value))
    return t


def connections(
    rows: list[dict[str, Any]],
    *,
    wide: bool = False,
    headers: bool = True,
    width: int | None = None,
) -> Table:
    columns = ["NAME", "TYPE", "ENABLED", "SCHEMA", "POLICY", "SCHEDULE", "LAST RUN", "ACTIVE"]
    if wide:
        columns[1:1] = ["NAMESPACE"]
        columns += ["LAST SUCCESS", "LAST ERROR"]
    out = []
    for c in rows:
        values = {
            "NAME": c["name"],
            "NAMESPACE": cell(c.get("namespace")),
            "TYPE": cell(c.get("type")),
            "ENABLED": cell(c.get("enabled")),
            "SCHEMA": cell(c.get("schema_name")),
            "POLICY": cell(c.get("concurrency_policy")),
            "SCHEDULE": cell(c.get("schedule")),
            "LAST RUN": cell(c.get("last_run_at")),
            "ACTIVE": cell(c.get("active_runs")),
            "LAST SUCCESS": cell(c.get("last_run_success")),
            "LAST ERROR": cell(c.get("last_run_error")),
        }
        out.append([values[k] for k in columns])
    drop = () if wide else ("POLICY", "SCHEMA", "ACTIVE", "ENABLED", "SCHEDULE", "TYPE")
    return listing(columns, out, headers=headers, width=width, drop=drop)


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


def batch_runs(
    runs: list[dict[str, Any]] | None, title: str | None = None, *, headers: bool = True
) -> Table:
    rows = [
        [
            r.get("connection") or "-",
            cell(r.get("run_id")),
            cell(r.get("phase") or "Pending"),
            cell(r.get("success")),
            cell(r.get("error")),
        ]
        for r in runs or []
    ]
    columns = ["CONNECTION", "RUN", "PHASE", "SUCCESS", "ERROR"]
    return listing(columns, rows, ids=2, headers=headers, title=title)


def history(
    entries: list[dict[str, Any]],
    *,
    wide: bool = False,
    headers: bool = True,
    width: int | None = None,
) -> Table:
    columns = ["RUN", "CONNECTION", "KIND", "TRIGGER", "STATUS", "ROWS", "DURATION", "FINISHED"]
    if wide:
        columns[2:2] = ["NAMESPACE"]
        columns += ["ATTEMPTS", "STARTED", "ERROR"]
    rows = []
    for e in entries:
        values = {
            "RUN": e["run_id"],
            "CONNECTION": e.get("connection") or "-",
            "NAMESPACE": cell(e.get("namespace")),
            "KIND": cell(e.get("kind")),
            "TRIGGER": cell(e.get("trigger")),
            "STATUS": cell(e.get("status")),
            "ROWS": cell(e.get("rows_inserted")),
            "DURATION": wall_clock(e),
            "FINISHED": cell(e.get("finished_at")),
            "ATTEMPTS": cell(e.get("attempts")),
            "STARTED": cell(e.get("started_at")),
            "ERROR": cell(e.get("error")),
        }
        rows.append([values[k] for k in columns])
    drop = () if wide else ("KIND", "TRIGGER", "ROWS", "FINISHED")
    return listing(columns, rows, ids=2, headers=headers, width=width, drop=drop)


def contexts(rows: list[dict[str, Any]], *, headers: bool = True) -> Table:
    out = [["*" if r["current"] else "", r["name"], cell(r.get("api")), r["auth"]] for r in rows]
    return listing(["CURRENT", "NAME", "API", "AUTH"], out, ids=2, headers=headers)


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


def schema_columns(body: Mapping[str, Any], *, headers: bool = True) -> Table:
    """One line per column of every table the connection loads."""
    rows = []
    for table in body.get("tables") or []:
        name = table["name"] + (f" (in {table['parent']})" if table.get("parent") else "")
        for column in table.get("columns") or []:
            rows.append(
                [
                    name,
                    column["name"],
                    cell(column.get("data_type")),
                    "yes" if column.get("nullable") else "no",
                    "PK" if column.get("primary_key") else "",
                ]
            )
    return listing(["TABLE", "COLUMN", "TYPE", "NULLABLE", "KEY"], rows, ids=2, headers=headers)


def schema_summary(body: Mapping[str, Any]) -> str:
    if body.get("source") != "run":
        return f"{body.get('connection')}: no successful run has reported its schema yet"
    tables = body.get("tables") or []
    line = (
        f"{body.get('connection')} → schema {body.get('schema_name')}: {len(tables)} table(s), "
        f"as run {body.get('run_id')} loaded them ({body.get('loaded_at')})"
    )
    if body.get("truncated"):
        line += "; more tables or columns exist than are listed"
    return line
