"""Pure mapping between the Kubernetes objects (raw dicts, camelCase) and the API's bodies.

No I/O here: every function takes the objects from the watch cache (or an archive row) and
returns a response model, so all of it is unit-tested without a cluster. The shapes are the
ones in docs/contracts.md; when typed models of the CRs land in `datapipelines.resources` only
the accessors at the top of this module need to change.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from datapipelines.api.models import (
    BatchRunOut,
    ConnectionOut,
    ConnectionStatusOut,
    HistoryEntryOut,
    ProgressOut,
    RunResultOut,
    TaskState,
    TaskStatusOut,
)
from datapipelines.resources import (
    API_VERSION,
    BATCH_KIND,
    LABEL_BATCH,
    LABEL_CONNECTION,
    LABEL_TRIGGER,
    RUN_KIND,
)
from datapipelines.resources.models import BatchState, RunPhase

Obj = Mapping[str, Any]

PHASES = tuple(p.value for p in RunPhase)
TERMINAL_PHASES = frozenset(p.value for p in RunPhase if p.terminal)
BATCH_STATES = tuple(s.value for s in BatchState)
_PHASE_TO_TASK_STATE: dict[str, TaskState] = {
    "Queued": "queued",
    "Running": "running",
    "Succeeded": "finished",
    "Failed": "finished",
    "Cancelled": "cancelled",
}
_PHASE_TO_OUTCOME: dict[str, Literal["succeeded", "failed", "cancelled"]] = {
    "Succeeded": "succeeded",
    "Failed": "failed",
    "Cancelled": "cancelled",
}
# Job names (= run names) must stay valid label values: 63 characters at most.
_MAX_GENERATE_PREFIX = 63 - 5 - 1


# --- accessors on the raw objects -------------------------------------------------------------


def name_of(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


def labels_of(obj: Obj) -> Mapping[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}


def spec_of(obj: Obj) -> Mapping[str, Any]:
    return obj.get("spec") or {}


def status_of(obj: Obj) -> Mapping[str, Any]:
    return obj.get("status") or {}


def created_at(obj: Obj) -> str | None:
    return (obj.get("metadata") or {}).get("creationTimestamp")


def run_connection(run: Obj) -> str:
    return str(spec_of(run).get("connectionName") or labels_of(run).get(LABEL_CONNECTION) or "")


def run_batch(run: Obj) -> str | None:
    return labels_of(run).get(LABEL_BATCH) or None


def run_trigger(run: Obj) -> str | None:
    return spec_of(run).get("trigger") or labels_of(run).get(LABEL_TRIGGER) or None


def _succeeded_condition(run: Obj) -> Mapping[str, Any]:
    for cond in status_of(run).get("conditions") or []:
        if cond.get("type") == "Succeeded":
            found: Mapping[str, Any] = cond
            return found
    return {}


def run_phase(run: Obj) -> str:
    """The run's state: `status.phase`, else the Succeeded condition's reason, else Queued."""
    phase = status_of(run).get("phase")
    if phase in PHASES:
        return str(phase)
    reason = _succeeded_condition(run).get("reason")
    if reason in PHASES:
        return str(reason)
    return "Queued"


def is_terminal(run: Obj) -> bool:
    return run_phase(run) in TERMINAL_PHASES


def run_started_at(run: Obj) -> str | None:
    st = status_of(run)
    return st.get("startTime") or st.get("queuedAt") or created_at(run)


def run_finished_at(run: Obj) -> str | None:
    return status_of(run).get("completionTime")


def parse_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def format_time(value: Any) -> str | None:
    """RFC 3339 in UTC with a `Z`, as Kubernetes writes it; strings pass through unchanged."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, datetime):
        dt = value if value.tzinfo else value.replace(tzinfo=UTC)
        return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return str(value)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _time_key(*values: Any) -> datetime:
    for value in values:
        parsed = parse_time(value)
        if parsed is not None:
            return parsed
    return _EPOCH


def run_recency(run: Obj) -> tuple[datetime, datetime, str]:
    """Sort key, newest last: finish time, then start/creation time, then name."""
    return (
        _time_key(run_finished_at(run), run_started_at(run)),
        _time_key(run_started_at(run)),
        name_of(run),
    )


def runs_of_connection(runs: Iterable[Obj], connection: str) -> list[Obj]:
    return [run for run in runs if run_connection(run) == connection]


def active_runs(runs: Iterable[Obj], connection: str) -> list[str]:
    """Names of the connection's unfinished runs, oldest first."""
    active = [r for r in runs_of_connection(runs, connection) if not is_terminal(r)]
    active.sort(key=lambda r: (_time_key(created_at(r)), name_of(r)))
    return [name_of(r) for r in active]


def _int_or_none(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _duration_ms(start: Any, end: Any) -> int | None:
    s, e = parse_time(start), parse_time(end)
    if s is None or e is None:
        return None
    return max(0, int((e - s).total_seconds() * 1000))


# --- runs -------------------------------------------------------------------------------------


def run_error(run: Obj) -> str | None:
    """The error of an ended run: the result's error, else the condition's message."""
    phase = run_phase(run)
    result = status_of(run).get("result") or {}
    if result.get("error"):
        return str(result["error"])
    if phase == "Failed":
        return str(_succeeded_condition(run).get("message") or "run failed")
    if phase == "Cancelled":
        return str(_succeeded_condition(run).get("message") or "run cancelled")
    return None


def run_result(run: Obj, *, include_report: bool) -> RunResultOut:
    """The body of `POST /connections/{name}/run` for an ended run (the phase is the truth)."""
    st = status_of(run)
    result = st.get("result") or {}
    phase = run_phase(run)
    duration = _int_or_none(result.get("durationMs"))
    if duration is None:
        duration = _duration_ms(st.get("startTime"), st.get("completionTime")) or 0
    attempts = _int_or_none(st.get("attempts"))
    if attempts is None:
        attempts = _int_or_none(result.get("attempts"))
    return RunResultOut(
        success=phase == "Succeeded",
        duration_ms=duration,
        rows_inserted=_int_or_none(result.get("rowsInserted")) or 0,
        error=run_error(run),
        report=result.get("report") if include_report else None,
        attempts=attempts,
        records_reported=_int_or_none(result.get("recordsReported")),
        progress_counts=result.get("progressCounts"),
        run_id=name_of(run),
        status=_PHASE_TO_OUTCOME.get(phase),
        report_truncated=result.get("reportTruncated") if include_report else None,
    )


def progress_of(run: Obj) -> ProgressOut | None:
    progress = status_of(run).get("progress")
    if not progress:
        return None
    return ProgressOut(
        stage=progress.get("stage"),
        records_extracted=_int_or_none(progress.get("recordsExtracted")),
        tables=progress.get("tables"),
        updated_at=format_time(progress.get("updatedAt")),
    )


def task_status_of_run(run: Obj) -> TaskStatusOut:
    phase = run_phase(run)
    connection = run_connection(run)
    terminal = phase in TERMINAL_PHASES
    return TaskStatusOut(
        task_id=name_of(run),
        kind="single",
        status=_PHASE_TO_TASK_STATE[phase],
        connections=[connection],
        current=connection if phase == "Running" else None,
        completed=[connection] if terminal else [],
        canceled=phase == "Cancelled" or bool(spec_of(run).get("cancelRequested")),
        started_at=run_started_at(run),
        finished_at=run_finished_at(run),
        active=not terminal,
        connection=connection,
        result=run_result(run, include_report=True) if terminal else None,
        error=run_error(run) if terminal else None,
        phase=phase,
        trigger=run_trigger(run),
        batch=run_batch(run),
        attempts=_int_or_none(status_of(run).get("attempts")),
        progress=progress_of(run),
    )


# --- batches ----------------------------------------------------------------------------------


def batch_state(batch: Obj) -> TaskState:
    state = status_of(batch).get("state")
    if state in BATCH_STATES:
        return state  # type: ignore[no-any-return]
    return "queued"


def is_batch_finished(batch: Obj) -> bool:
    return batch_state(batch) in ("finished", "cancelled")


def batch_runs(batch: Obj, runs: Iterable[Obj]) -> list[BatchRunOut]:
    """The batch's runs in order: `status.runs`, enriched (and completed) from cached runs."""
    by_name = {name_of(r): r for r in runs if run_batch(r) == name_of(batch)}
    out: list[BatchRunOut] = []
    seen: set[str] = set()
    for entry in status_of(batch).get("runs") or []:
        run_name = entry.get("runName")
        run = by_name.get(run_name or "")
        out.append(_batch_run(entry.get("connection", ""), run_name, entry.get("phase"), run))
        if run_name:
            seen.add(run_name)
    extra = sorted((r for n, r in by_name.items() if n not in seen), key=run_recency)
    for run in extra:
        out.append(_batch_run(run_connection(run), name_of(run), None, run))
    return out


def _batch_run(
    connection: str, run_name: str | None, phase: str | None, run: Obj | None
) -> BatchRunOut:
    if run is not None:
        phase = run_phase(run)
        ended = phase in TERMINAL_PHASES
        return BatchRunOut(
            connection=connection or run_connection(run),
            run_id=run_name,
            phase=phase,
            success=(phase == "Succeeded") if ended else None,
            error=run_error(run) if ended else None,
        )
    ended = phase in TERMINAL_PHASES
    return BatchRunOut(
        connection=connection,
        run_id=run_name,
        phase=phase,
        success=(phase == "Succeeded") if ended else None,
    )


def task_status_of_batch(batch: Obj, runs: Iterable[Obj]) -> TaskStatusOut:
    st = status_of(batch)
    state = batch_state(batch)
    finished = state in ("finished", "cancelled")
    return TaskStatusOut(
        task_id=name_of(batch),
        kind="batch",
        status=state,
        connections=list(spec_of(batch).get("connections") or []),
        current=None if finished else st.get("current"),
        completed=list(st.get("completed") or []),
        canceled=state == "cancelled" or bool(spec_of(batch).get("cancelRequested")),
        started_at=st.get("startedAt") or created_at(batch),
        finished_at=st.get("finishedAt"),
        active=not finished,
        trigger=labels_of(batch).get(LABEL_TRIGGER),
        runs=batch_runs(batch, runs),
    )


# --- connections ------------------------------------------------------------------------------


@dataclass(frozen=True)
class LastRun:
    """The last finished run of a connection, from wherever it was found."""

    source: Literal["runs", "archive", "connection"]
    at: str | None
    success: bool | None
    error: str | None
    duration_ms: int | None
    attempts: int | None
    run_id: str | None


def last_run_from_runs(runs: Iterable[Obj], connection: str) -> LastRun | None:
    ended = [r for r in runs_of_connection(runs, connection) if is_terminal(r)]
    if not ended:
        return None
    run = max(ended, key=run_recency)
    result = run_result(run, include_report=False)
    return LastRun(
        source="runs",
        at=run_started_at(run),
        success=result.success,
        error=result.error,
        duration_ms=result.duration_ms,
        attempts=result.attempts,
        run_id=name_of(run),
    )


def last_run_from_connection(conn: Obj) -> LastRun | None:
    st = status_of(conn)
    if not st.get("lastRunAt") and not st.get("lastRunName"):
        return None
    return LastRun(
        source="connection",
        at=st.get("lastRunAt"),
        success=st.get("lastRunSuccess"),
        error=st.get("lastRunError"),
        duration_ms=_int_or_none(st.get("lastRunDurationMs")),
        attempts=_int_or_none(st.get("lastRunAttempts")),
        run_id=st.get("lastRunName"),
    )


def last_run_from_archive(row: Mapping[str, Any]) -> LastRun:
    return LastRun(
        source="archive",
        at=format_time(row.get("started_at")),
        success=row.get("success"),
        error=row.get("error"),
        duration_ms=_int_or_none(row.get("duration_ms")),
        attempts=_int_or_none(row.get("attempts")),
        run_id=row.get("run_name"),
    )


def newest_last_run(*candidates: LastRun | None) -> LastRun | None:
    """The most recent candidate by start time; on a tie the earlier argument wins."""
    best: LastRun | None = None
    for cand in candidates:
        if cand is None:
            continue
        if best is None or _time_key(cand.at) > _time_key(best.at):
            best = cand
    return best


def connection_out(conn: Obj, runs: Iterable[Obj]) -> ConnectionOut:
    runs = list(runs)
    name = name_of(conn)
    last = newest_last_run(last_run_from_runs(runs, name), last_run_from_connection(conn))
    return ConnectionOut(**_connection_fields(conn, runs), last_run_at=last.at if last else None)


def connection_status_out(
    conn: Obj, runs: Iterable[Obj], last: LastRun | None
) -> ConnectionStatusOut:
    runs = list(runs)
    fields = _connection_fields(conn, runs)
    if last is None:
        return ConnectionStatusOut(**fields, last_run_at=None)
    return ConnectionStatusOut(
        **fields,
        last_run_at=last.at,
        last_run_success=last.success,
        last_run_error=last.error,
        last_run_duration_ms=last.duration_ms,
        last_run_attempts=last.attempts,
        last_run_id=last.run_id,
        last_run_source=last.source,
    )


def _connection_fields(conn: Obj, runs: list[Obj]) -> dict[str, Any]:
    sp = spec_of(conn)
    enabled = sp.get("enabled")
    return {
        "name": name_of(conn),
        "type": str(sp.get("type") or ""),
        "enabled": True if enabled is None else bool(enabled),
        "schema_name": str(sp.get("schemaName") or ""),
        "concurrency_policy": str(sp.get("concurrencyPolicy") or "Forbid"),
        "schedule": sp.get("schedule") or None,
        "active_runs": active_runs(runs, name_of(conn)),
    }


def is_enabled(conn: Obj) -> bool:
    enabled = spec_of(conn).get("enabled")
    return True if enabled is None else bool(enabled)


# --- history ----------------------------------------------------------------------------------


def history_entry_of_run(run: Obj) -> HistoryEntryOut:
    result = run_result(run, include_report=False)
    phase = run_phase(run)
    return HistoryEntryOut(
        run_id=name_of(run),
        connection=run_connection(run),
        kind="batch" if run_batch(run) else "single",
        trigger=run_trigger(run),
        batch=run_batch(run),
        status=_PHASE_TO_OUTCOME[phase],
        phase=phase,
        success=result.success,
        started_at=run_started_at(run),
        finished_at=run_finished_at(run),
        duration_ms=result.duration_ms,
        rows_inserted=result.rows_inserted,
        records_reported=result.records_reported,
        attempts=result.attempts,
        error=result.error,
    )


def history_entry_of_row(row: Mapping[str, Any]) -> HistoryEntryOut:
    """One row of the `datapipelines_run_history` archive table."""
    phase = str(row.get("phase") or ("Succeeded" if row.get("success") else "Failed"))
    if phase not in TERMINAL_PHASES:
        phase = "Succeeded" if row.get("success") else "Failed"
    batch = row.get("batch") or None
    return HistoryEntryOut(
        run_id=str(row["run_name"]),
        connection=str(row.get("connection") or ""),
        kind="batch" if batch else "single",
        trigger=row.get("trigger"),
        batch=batch,
        status=_PHASE_TO_OUTCOME[phase],
        phase=phase,
        success=bool(row.get("success")) and phase == "Succeeded",
        started_at=format_time(row.get("started_at")),
        finished_at=format_time(row.get("finished_at")),
        duration_ms=_int_or_none(row.get("duration_ms")),
        rows_inserted=_int_or_none(row.get("rows_inserted")),
        records_reported=_int_or_none(row.get("records_reported")),
        attempts=_int_or_none(row.get("attempts")),
        error=row.get("error"),
    )


def history_sort_key(entry: HistoryEntryOut) -> tuple[datetime, datetime, str]:
    return (
        _time_key(entry.finished_at, entry.started_at),
        _time_key(entry.started_at),
        entry.run_id,
    )


def merge_history(
    runs: Iterable[Obj], archived: Iterable[HistoryEntryOut], limit: int
) -> list[HistoryEntryOut]:
    """Finished runs from the cluster and the archive, one entry per run, newest first."""
    entries: dict[str, HistoryEntryOut] = {e.run_id: e for e in archived}
    for run in runs:
        if is_terminal(run):
            entries[name_of(run)] = history_entry_of_run(run)
    return sorted(entries.values(), key=history_sort_key, reverse=True)[:limit]


# --- new objects ------------------------------------------------------------------------------


def _generate_prefix(base: str) -> str:
    return base[:_MAX_GENERATE_PREFIX].rstrip("-.") + "-"


def _label_safe(value: str) -> bool:
    return len(value) <= 63


def new_run_manifest(connection: str, trigger: str = "api") -> dict[str, Any]:
    """A PipelineRun asking for one run of `connection` (its name is generated)."""
    labels = {LABEL_TRIGGER: trigger}
    if _label_safe(connection):
        labels[LABEL_CONNECTION] = connection
    return {
        "apiVersion": API_VERSION,
        "kind": RUN_KIND,
        "metadata": {"generateName": _generate_prefix(connection), "labels": labels},
        "spec": {"connectionName": connection, "trigger": trigger},
    }


def new_batch_manifest(connections: list[str], trigger: str = "api") -> dict[str, Any]:
    """A PipelineBatch running `connections` one after another (its name is generated)."""
    return {
        "apiVersion": API_VERSION,
        "kind": BATCH_KIND,
        "metadata": {"generateName": "batch-", "labels": {LABEL_TRIGGER: trigger}},
        "spec": {"connections": list(connections)},
    }


CANCEL_PATCH: dict[str, Any] = {"spec": {"cancelRequested": True}}
