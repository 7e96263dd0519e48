"""Pure mapping from the typed objects (the shared contract's models, as the catalog holds
them) and archive rows to the API's response bodies. No I/O: unit-tested without a cluster."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Literal

from datapipelines.api.catalog import Catalog, ConnectionSummary, run_recency
from datapipelines.api.models import (
    BatchRunOut,
    ConnectionOut,
    ConnectionSchemaOut,
    ConnectionStatusOut,
    HistoryEntryOut,
    ProgressOut,
    RunOptionsOut,
    RunResultOut,
    RunSchemaChangesOut,
    SchemaChangeOut,
    SchemaColumnOut,
    SchemaTableOut,
    TaskState,
    TaskStatusOut,
)
from datapipelines.resources import LABEL_BATCH, LABEL_TRIGGER
from datapipelines.resources.batch import BatchState, PipelineBatch
from datapipelines.resources.run import LoadedSchema, PipelineRun, RunPhase
from datapipelines.resources.times import duration_ms, format_time, time_key

_PHASE_TO_TASK_STATE: dict[RunPhase | None, TaskState] = {
    None: "queued",
    RunPhase.QUEUED: "queued",
    RunPhase.RUNNING: "running",
    RunPhase.SUCCEEDED: "finished",
    RunPhase.FAILED: "finished",
    RunPhase.CANCELLED: "cancelled",
}
_PHASE_TO_OUTCOME: dict[str, Literal["succeeded", "failed", "cancelled"]] = {
    "Succeeded": "succeeded",
    "Failed": "failed",
    "Cancelled": "cancelled",
}
Outcome = Literal["succeeded", "failed", "cancelled"]


def phase_name(run: PipelineRun) -> str:
    phase = run.phase
    return phase.value if phase is not None else RunPhase.QUEUED.value


def run_batch(run: PipelineRun) -> str | None:
    return run.metadata.labels.get(LABEL_BATCH) or None


def run_started_at(run: PipelineRun) -> str | None:
    st = run.status
    return format_time(st.start_time or st.queued_at or run.metadata.creation_timestamp)


def run_error(run: PipelineRun) -> str | None:
    """The error of an ended run: the result's error, else the condition's message."""
    result = run.status.result
    if result is not None and result.error:
        return result.error
    if run.phase is RunPhase.FAILED:
        return run.condition_message or "run failed"
    if run.phase is RunPhase.CANCELLED:
        return run.condition_message or "run cancelled"
    return None


def run_result(run: PipelineRun, *, report: str | None = None) -> RunResultOut:
    """The body of `POST /connections/{name}/run` for an ended run (the phase is the truth);
    ``report`` is given only when the caller asked for it (it is read on demand)."""
    st = run.status
    result = st.result
    duration = result.duration_ms if result else None
    if duration is None:
        duration = duration_ms(st.start_time, st.completion_time) or 0
    changes = result.schema_changes if result else None
    return RunResultOut(
        success=run.phase is RunPhase.SUCCEEDED,
        duration_ms=duration,
        rows_inserted=(result.rows_inserted if result else None) or 0,
        error=run_error(run),
        report=report,
        attempts=st.attempts,
        records_reported=result.records_reported if result else None,
        progress_counts=result.progress_counts if result else None,
        run_id=run.name,
        status=_PHASE_TO_OUTCOME.get(phase_name(run)),
        report_truncated=(result.report_truncated if result else None) if report else None,
        schema_changes=[c.to_k8s() for c in changes] if changes else None,
    )


def progress_of(run: PipelineRun) -> ProgressOut | None:
    p = run.status.progress
    if p is None:
        return None
    return ProgressOut(
        stage=p.stage.value if p.stage else None,
        records_extracted=p.records_extracted,
        tables=p.tables,
        rows_loaded=p.rows_loaded,
        jobs_done=p.jobs_done,
        jobs_total=p.jobs_total,
        updated_at=format_time(p.updated_at),
    )


def task_status_of_run(run: PipelineRun, *, report: str | None = None) -> TaskStatusOut:
    phase = run.phase
    connection = run.spec.connection_name
    terminal = run.terminal
    return TaskStatusOut(
        task_id=run.name,
        kind="single",
        status=_PHASE_TO_TASK_STATE[phase],
        connections=[connection],
        current=connection if phase is RunPhase.RUNNING else None,
        completed=[connection] if terminal else [],
        canceled=phase is RunPhase.CANCELLED or run.spec.cancel_requested,
        started_at=run_started_at(run),
        finished_at=format_time(run.status.completion_time),
        active=not terminal,
        connection=connection,
        result=run_result(run, report=report) if terminal else None,
        error=run_error(run) if terminal else None,
        phase=phase_name(run),
        trigger=run.spec.trigger.value,
        batch=run_batch(run),
        attempts=run.status.attempts,
        progress=progress_of(run),
        options=options_out(run),
    )


# --- batches ----------------------------------------------------------------------------------


def batch_state(batches: list[PipelineBatch]) -> TaskState:
    """The state of a batch task (one PipelineBatch per namespace)."""
    states = [b.state for b in batches]
    if any(s is BatchState.RUNNING for s in states):
        return "running"
    if all(s is BatchState.QUEUED for s in states):
        return "queued"
    if all(s.done for s in states) or not any(s is BatchState.QUEUED for s in states):
        if any(s is BatchState.CANCELLED for s in states):
            return "cancelled"
        if all(s is BatchState.FINISHED for s in states):
            return "finished"
    return "running"


def is_batch_finished(batches: list[PipelineBatch]) -> bool:
    return all(b.state.done for b in batches)


def _batch_run(
    connection: str, run_name: str | None, phase: str | None, run: PipelineRun | None
) -> BatchRunOut:
    if run is not None:
        ended = run.terminal
        return BatchRunOut(
            connection=connection,
            run_id=run.name,
            phase=phase_name(run),
            success=(run.phase is RunPhase.SUCCEEDED) if ended else None,
            error=run_error(run) if ended else None,
        )
    ended = phase in _PHASE_TO_OUTCOME
    return BatchRunOut(
        connection=connection,
        run_id=run_name,
        phase=phase,
        success=(phase == "Succeeded") if ended else None,
    )


def batch_runs(batch: PipelineBatch, runs: Iterable[PipelineRun]) -> list[BatchRunOut]:
    """The batch's runs in order: its status, enriched (and completed) from cached runs."""
    by_name = {r.name: r for r in runs}
    out: list[BatchRunOut] = []
    seen: set[str] = set()
    for entry in batch.status.runs:
        run = by_name.get(entry.run_name)
        phase = entry.phase.value if entry.phase else None
        out.append(_batch_run(entry.connection, entry.run_name, phase, run))
        seen.add(entry.run_name)
    for run in sorted((r for n, r in by_name.items() if n not in seen), key=run_recency):
        out.append(_batch_run(run.spec.connection_name, run.name, None, run))
    return out


def task_status_of_batches(
    batches: list[PipelineBatch], runs_of: Mapping[str, list[PipelineRun]]
) -> TaskStatusOut:
    """A batch task: the PipelineBatches of one name (one per namespace), ``runs_of`` their
    runs by namespace."""
    first = batches[0]
    state = batch_state(batches)
    finished = state in ("finished", "cancelled")
    starts = [b.status.started_at or b.metadata.creation_timestamp for b in batches]
    ends = [b.status.finished_at for b in batches]
    return TaskStatusOut(
        task_id=first.metadata.name,
        kind="batch",
        status=state,
        connections=[c for b in batches for c in b.spec.connections],
        current=None
        if finished
        else next((b.status.current for b in batches if b.status.current), None),
        completed=[c for b in batches for c in b.status.completed],
        canceled=state == "cancelled" or any(b.spec.cancel_requested for b in batches),
        started_at=format_time(min((s for s in starts if s), default=None)),
        finished_at=format_time(max(e for e in ends if e)) if finished and all(ends) else None,
        active=not finished,
        trigger=first.metadata.labels.get(LABEL_TRIGGER),
        runs=[r for b in batches for r in batch_runs(b, runs_of.get(b.metadata.namespace, []))],
    )


# --- connections ------------------------------------------------------------------------------


def _last_run_fields(catalog: Catalog, conn: ConnectionSummary) -> dict[str, Any]:
    """The connection's last run: the operator's record in its status, or a newer finished run
    in memory (the two watches deliver independently; the newer one is the truth)."""
    st = conn.status
    fields: dict[str, Any] = {
        "last_run_at": format_time(st.last_run_at),
        "last_run_success": st.last_run_success,
        "last_run_error": st.last_run_error,
        "last_run_duration_ms": st.last_run_duration_ms,
        "last_run_attempts": st.last_run_attempts,
        "last_run_id": st.last_run_name,
        "last_run_source": "connection" if st.last_run_at or st.last_run_name else None,
    }
    run = catalog.last_finished(conn.key)
    if run is not None and time_key(run.status.start_time) > time_key(st.last_run_at):
        result = run_result(run)
        fields.update(
            last_run_at=run_started_at(run),
            last_run_success=result.success,
            last_run_error=result.error,
            last_run_duration_ms=result.duration_ms,
            last_run_attempts=result.attempts,
            last_run_id=run.name,
            last_run_source="runs",
        )
    return fields


def _connection_fields(catalog: Catalog, conn: ConnectionSummary) -> dict[str, Any]:
    return {
        "name": conn.name,
        "type": conn.type,
        "enabled": conn.enabled,
        "schema_name": conn.schema_name,
        "concurrency_policy": conn.concurrency_policy,
        "schedule": conn.schedule or None,
        "active_runs": [r.name for r in catalog.active_runs(conn.key)],
        "namespace": conn.namespace,
        "ready": conn.ready,
        "ready_reason": conn.ready_reason if conn.ready is False else None,
    }


def connection_out(catalog: Catalog, conn: ConnectionSummary) -> ConnectionOut:
    last = _last_run_fields(catalog, conn)
    return ConnectionOut(**_connection_fields(catalog, conn), last_run_at=last["last_run_at"])


def connection_status_out(catalog: Catalog, conn: ConnectionSummary) -> ConnectionStatusOut:
    return ConnectionStatusOut(
        **_connection_fields(catalog, conn),
        **_last_run_fields(catalog, conn),
        last_success_at=format_time(conn.status.last_success_time),
    )


def last_run_of_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """The last-run fields of a connection from its newest archive row."""
    return {
        "last_run_at": format_time(row.get("started_at")),
        "last_run_success": row.get("success"),
        "last_run_error": row.get("error"),
        "last_run_duration_ms": _int_or_none(row.get("duration_ms")),
        "last_run_attempts": _int_or_none(row.get("attempts")),
        "last_run_id": row.get("run_name"),
        "last_run_source": "archive",
    }


def connection_fragment(catalog: Catalog, conn: ConnectionSummary) -> bytes:
    """One item of `GET /connections` as JSON (cached by the catalog until it changes)."""
    return connection_out(catalog, conn).model_dump_json().encode()


# --- history ----------------------------------------------------------------------------------


def history_entry_of_run(run: PipelineRun) -> HistoryEntryOut:
    result = run_result(run)
    phase = phase_name(run)
    batch = run_batch(run)
    return HistoryEntryOut(
        run_id=run.name,
        connection=run.spec.connection_name,
        namespace=run.namespace,
        kind="batch" if batch else "single",
        trigger=run.spec.trigger.value,
        batch=batch,
        status=_PHASE_TO_OUTCOME[phase],
        phase=phase,
        success=result.success,
        started_at=run_started_at(run),
        finished_at=format_time(run.status.completion_time),
        duration_ms=result.duration_ms,
        rows_inserted=result.rows_inserted,
        records_reported=result.records_reported,
        attempts=result.attempts,
        error=result.error,
        options=options_out(run),
    )


def options_out(run: PipelineRun) -> RunOptionsOut | None:
    options = run.spec.options
    if options is None:
        return None
    return RunOptionsOut(
        full_refresh=options.full_refresh,
        streams=list(options.streams),
        since=format_time(options.since),
    )


def _int_or_none(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def history_entry_of_row(row: Mapping[str, Any]) -> HistoryEntryOut:
    """One row of the `datapipelines_run_history` archive table."""
    phase = str(row.get("phase") or ("Succeeded" if row.get("success") else "Failed"))
    if phase not in _PHASE_TO_OUTCOME:
        phase = "Succeeded" if row.get("success") else "Failed"
    batch = row.get("batch") or None
    return HistoryEntryOut(
        run_id=str(row["run_name"]),
        connection=str(row.get("connection") or ""),
        namespace=row.get("namespace"),
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
        time_key(entry.finished_at, entry.started_at),
        time_key(entry.started_at),
        entry.run_id,
    )


def merge_history(
    runs: Iterable[PipelineRun], archived: Iterable[HistoryEntryOut], limit: int
) -> list[HistoryEntryOut]:
    """Finished runs from the cluster and the archive, one entry per run, newest first."""
    import heapq

    newest = heapq.nlargest(limit, (r for r in runs if r.terminal), key=run_recency)
    entries: dict[tuple[str | None, str], HistoryEntryOut] = {
        (e.namespace, e.run_id): e for e in archived
    }
    for run in newest:
        entries[(run.namespace, run.name)] = history_entry_of_run(run)
    return sorted(entries.values(), key=history_sort_key, reverse=True)[:limit]


# --- schema -----------------------------------------------------------------------------------


def schema_out(
    out: ConnectionSchemaOut, run: PipelineRun, schema: LoadedSchema
) -> ConnectionSchemaOut:
    """`out` filled from the schema `run` reported."""
    return out.model_copy(
        update={
            "source": "run",
            "run_id": run.name,
            "loaded_at": format_time(run.status.completion_time),
            "dlt_schema": schema.name,
            "version": schema.version,
            "truncated": bool(schema.truncated),
            "tables": [
                SchemaTableOut(
                    name=t.name,
                    parent=t.parent,
                    write_disposition=t.write_disposition,
                    columns=[
                        SchemaColumnOut(
                            name=c.name,
                            data_type=c.data_type,
                            nullable=c.nullable,
                            primary_key=c.primary_key,
                        )
                        for c in t.columns
                    ],
                )
                for t in schema.tables
            ],
        }
    )


def recent_schema_changes(runs: list[PipelineRun]) -> list[RunSchemaChangesOut]:
    """The schema changes of `runs` (newest first) that made any."""
    out = []
    for run in runs:
        result = run.status.result or run.status.runner_result
        changes = result.schema_changes if result is not None else None
        if changes:
            out.append(
                RunSchemaChangesOut(
                    run_id=run.name,
                    finished_at=format_time(run.status.completion_time),
                    changes=[SchemaChangeOut(**c.model_dump(mode="json")) for c in changes],
                )
            )
    return out
