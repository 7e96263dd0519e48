"""What the console's pages show, computed from the API's own models (pure: no I/O, the clock a
parameter), so each page is unit-tested without a browser or a cluster."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any
from urllib.parse import urlencode

import yaml

from datapipelines.api.models import ConnectionStatusOut, HistoryEntryOut, TaskStatusOut
from datapipelines.resources.schedule import next_tick
from datapipelines.resources.schedule import time_zone as zone_of
from datapipelines.resources.times import parse_time

PAGE_SIZE = 50
CONNECTIONS_PAGE_SIZE = 100
#: metadata fields a person does not need to read (and that make the YAML long)
NOISY_METADATA = ("managedFields", "resourceVersion", "generation", "uid", "creationTimestamp")


class Health(StrEnum):
    """A connection at a glance, the order on-call reads them in."""

    FAILING = "failing"
    RUNNING = "running"
    NOT_READY = "not-ready"
    OK = "ok"
    NEVER_RAN = "never-ran"
    DISABLED = "disabled"


@dataclass(frozen=True)
class ConnectionRow:
    name: str
    namespace: str
    type: str
    enabled: bool
    schedule: str | None
    time_zone: str | None
    next_tick: str | None
    health: Health
    last_run_at: str | None
    last_run_id: str | None
    last_success: bool | None
    last_phase: str | None  # Succeeded, Failed or Cancelled, when the run is still known
    last_error: str | None
    last_duration: str | None
    last_rows: int | None
    ready: bool | None
    ready_reason: str | None
    active_run: str | None
    active_phase: str | None
    active_progress: str | None


def duration_text(ms: int | None) -> str | None:
    """`1.2 s`, `3 min 4 s`, `2 h 5 min` (None for unknown)."""
    if ms is None:
        return None
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def progress_text(task: TaskStatusOut | None) -> str | None:
    """One line of a run's live progress: stage, records extracted, rows loaded."""
    if task is None or task.progress is None:
        return None
    p = task.progress
    parts = [p.stage] if p.stage else []
    if p.records_extracted is not None:
        parts.append(f"{p.records_extracted:,} records extracted")
    if p.rows_loaded:
        parts.append(f"{sum(int(v or 0) for v in p.rows_loaded.values()):,} rows loaded")
    return " · ".join(parts) or None


def health_of(
    conn: ConnectionStatusOut, active: TaskStatusOut | None, last_phase: str | None = None
) -> Health:
    if active is not None:
        return Health.RUNNING
    if not conn.enabled:
        return Health.DISABLED
    if conn.ready is False:
        return Health.NOT_READY
    if conn.last_run_success is False and last_phase != "Cancelled":  # a cancel is no failure
        return Health.FAILING
    if conn.last_run_success is None:
        return Health.NEVER_RAN
    return Health.OK


def connection_row(
    conn: ConnectionStatusOut,
    *,
    time_zone: str | None,
    active: TaskStatusOut | None,
    last_rows: int | None,
    last_phase: str | None = None,
    now: datetime | None = None,
) -> ConnectionRow:
    """The row of one connection; its next tick only when `now` is given (a cron evaluation:
    done for the rows shown, not for every connection)."""
    row = ConnectionRow(
        name=conn.name,
        namespace=conn.namespace or "",
        type=conn.type,
        enabled=conn.enabled,
        schedule=conn.schedule,
        time_zone=time_zone,
        next_tick=None,
        health=health_of(conn, active, last_phase),
        last_run_at=conn.last_run_at,
        last_run_id=conn.last_run_id,
        last_success=conn.last_run_success,
        last_phase=last_phase,
        last_error=conn.last_run_error,
        last_duration=duration_text(conn.last_run_duration_ms),
        last_rows=last_rows,
        ready=conn.ready,
        ready_reason=conn.ready_reason,
        active_run=active.task_id if active else None,
        active_phase=active.phase if active else None,
        active_progress=progress_text(active),
    )
    return row if now is None else with_next_tick(row, now)


def with_next_tick(row: ConnectionRow, now: datetime) -> ConnectionRow:
    """The row with its schedule's next tick after `now`, in the schedule's zone."""
    if not row.schedule or not row.enabled:
        return row
    try:
        at = next_tick(row.schedule, row.time_zone, after=now).astimezone(zone_of(row.time_zone))
    except (ValueError, KeyError):  # refused by the operator: its condition says why
        return row
    return replace(row, next_tick=at.strftime("%Y-%m-%d %H:%M %Z"))


def page_of(rows: list[ConnectionRow], page: int) -> tuple[list[ConnectionRow], int, int]:
    """One page of CONNECTIONS_PAGE_SIZE rows: (rows, page, pages)."""
    pages = max(1, -(-len(rows) // CONNECTIONS_PAGE_SIZE))
    page = min(max(1, page), pages)
    start = (page - 1) * CONNECTIONS_PAGE_SIZE
    return rows[start : start + CONNECTIONS_PAGE_SIZE], page, pages


def filter_rows(rows: list[ConnectionRow], query: str, health: str) -> list[ConnectionRow]:
    """Rows whose name, namespace or type contain `query` (any case) and, unless `health` is
    empty or `all`, of that health."""
    needle = query.strip().lower()
    out = []
    for row in rows:
        if needle and not any(needle in v.lower() for v in (row.name, row.namespace, row.type)):
            continue
        if health and health != "all" and row.health.value != health:
            continue
        out.append(row)
    return out


def health_counts(rows: list[ConnectionRow]) -> dict[str, int]:
    counts = {h.value: 0 for h in Health}
    for row in rows:
        counts[row.health.value] += 1
    return counts


@dataclass(frozen=True)
class HistoryFilter:
    connection: str = ""
    status: str = ""  # succeeded | failed | cancelled | "" (any)
    since: date | None = None
    page: int = 1

    def query(self, **change: Any) -> str:
        """The URL query of this filter with `change` applied (for links; page 1 left out)."""
        values = {
            "connection": self.connection,
            "status": self.status,
            "since": self.since.isoformat() if self.since else "",
            "page": "" if self.page == 1 else str(self.page),
        }
        values.update({k: "" if k == "page" and v == 1 else str(v) for k, v in change.items()})
        return urlencode({k: v for k, v in values.items() if v})


@dataclass
class HistoryPage:
    entries: list[HistoryEntryOut]
    page: int
    pages: int
    total: int
    filter: HistoryFilter = field(default_factory=HistoryFilter)


def history_page(entries: list[HistoryEntryOut], flt: HistoryFilter) -> HistoryPage:
    """The entries (newest first) that pass the filter, one page of PAGE_SIZE."""
    needle = flt.connection.strip().lower()
    since = datetime.combine(flt.since, datetime.min.time(), UTC) if flt.since else None
    kept = []
    for entry in entries:
        if needle and needle not in entry.connection.lower():
            continue
        if flt.status and entry.status != flt.status:
            continue
        if since is not None:
            started = parse_time(entry.started_at or entry.finished_at)
            if started is None or started < since:
                continue
        kept.append(entry)
    pages = max(1, -(-len(kept) // PAGE_SIZE))
    page = min(max(1, flt.page), pages)
    chunk = kept[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    return HistoryPage(entries=chunk, page=page, pages=pages, total=len(kept), filter=flt)


def manifest_yaml(obj: dict[str, Any]) -> str:
    """The connection as a person reads it: metadata without the bookkeeping, spec, status.
    Secrets are references in the spec by construction (the CRD has no field for a value)."""
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in NOISY_METADATA}
    annotations = {
        k: v
        for k, v in (meta.get("annotations") or {}).items()
        if k != "kubectl.kubernetes.io/last-applied-configuration"
    }
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    shown = {
        "apiVersion": obj.get("apiVersion"),
        "kind": obj.get("kind"),
        "metadata": meta,
        "spec": obj.get("spec") or {},
    }
    return yaml.safe_dump(shown, sort_keys=False, default_flow_style=False)


def table_progress(task: TaskStatusOut) -> list[tuple[str, int | None, int | None]]:
    """Per table: (name, records extracted, rows loaded), tables in name order."""
    p = task.progress
    if p is None:
        return []
    extracted = {str(k): v for k, v in (p.tables or {}).items()}
    loaded = {str(k): v for k, v in (p.rows_loaded or {}).items()}
    out = []
    for name in sorted(set(extracted) | set(loaded)):
        e, r = extracted.get(name), loaded.get(name)
        out.append((name, _count(e), _count(r)))
    return out


def _count(value: Any) -> int | None:
    if isinstance(value, dict):
        value = value.get("records", value.get("rows"))
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None
