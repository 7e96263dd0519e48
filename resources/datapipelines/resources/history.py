"""The PostgreSQL run archive (``DATAPIPELINES_HISTORY_DSN``): one table, one row mapper.

The operator inserts every finished PipelineRun; the API reads the table for ``/history`` and
``/connections/{name}/status``. Both use this module so the two never disagree. Pure: no driver.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from . import LABEL_BATCH
from .run import is_terminal

TABLE = "datapipelines_run_history"

#: Idempotent DDL (run at operator start-up and before the first insert).
DDL = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    run_name         text NOT NULL,
    namespace        text NOT NULL,
    connection       text NOT NULL,
    trigger          text,
    batch            text,
    phase            text NOT NULL,
    success          boolean,
    started_at       timestamptz,
    finished_at      timestamptz,
    duration_ms      bigint,
    rows_inserted    bigint,
    records_reported bigint,
    attempts         integer,
    error            text,
    result           jsonb,
    PRIMARY KEY (namespace, run_name)
);
-- tables of earlier versions were keyed by run_name alone: same-named runs of two namespaces
DO $$ BEGIN
  IF (SELECT array_length(conkey, 1) FROM pg_constraint
      WHERE conrelid = '{TABLE}'::regclass AND contype = 'p') = 1 THEN
    ALTER TABLE {TABLE} DROP CONSTRAINT {TABLE}_pkey;
    ALTER TABLE {TABLE} ADD PRIMARY KEY (namespace, run_name);
  END IF;
END $$;
CREATE INDEX IF NOT EXISTS {TABLE}_finished_idx ON {TABLE} (finished_at DESC);
CREATE INDEX IF NOT EXISTS {TABLE}_conn_idx ON {TABLE} (namespace, connection, finished_at DESC);
"""

COLUMNS: tuple[str, ...] = (
    "run_name",
    "namespace",
    "connection",
    "trigger",
    "batch",
    "phase",
    "success",
    "started_at",
    "finished_at",
    "duration_ms",
    "rows_inserted",
    "records_reported",
    "attempts",
    "error",
    "result",
)

#: ``%(name)s`` placeholders (psycopg); a run archived twice keeps its first row (a run is
#: named once per namespace).
INSERT_SQL = (
    f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) "
    f"VALUES ({', '.join(f'%({c})s' for c in COLUMNS)}) "
    "ON CONFLICT (namespace, run_name) DO NOTHING"
)

#: Newest first; parameter ``limit``.
SELECT_RECENT_SQL = (
    f"SELECT {', '.join(COLUMNS)} FROM {TABLE} ORDER BY finished_at DESC NULLS LAST LIMIT %(limit)s"
)


def _parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def run_to_row(run: dict[str, Any]) -> dict[str, Any] | None:
    """Map a PipelineRun object (as returned by the apiserver) to a table row.

    Returns None while the run is not finished. ``result`` is the run's ``status.result``
    dict (camelCase) — serialise it as JSON (e.g. ``psycopg.types.json.Jsonb``) when inserting.
    """
    meta = run.get("metadata") or {}
    spec = run.get("spec") or {}
    status = run.get("status") or {}
    phase = status.get("phase")
    if not is_terminal(phase):
        return None
    result = dict(status.get("result") or {})
    runner = status.get("runnerResult") or {}
    if not result.get("report") and runner.get("report"):
        result["report"] = runner["report"]  # the runner's own report, kept in one place
    if runner.get("log"):
        result["log"] = runner["log"]  # the runner's kept log (≤ 48 KiB): readable for good
    started = _parse_time(status.get("startTime"))
    finished = _parse_time(status.get("completionTime"))
    duration = result.get("durationMs")
    if duration is None and started and finished:
        duration = int((finished - started).total_seconds() * 1000)
    success = result.get("success")
    if success is None:
        success = phase == "Succeeded"
    return {
        "run_name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "connection": spec.get("connectionName"),
        "trigger": spec.get("trigger"),
        "batch": (meta.get("labels") or {}).get(LABEL_BATCH),
        "phase": phase,
        "success": bool(success),
        "started_at": started,
        "finished_at": finished,
        "duration_ms": duration,
        "rows_inserted": result.get("rowsInserted"),
        "records_reported": result.get("recordsReported"),
        "attempts": status.get("attempts"),
        "error": result.get("error"),
        "result": result or None,
    }


def row_to_entry(row: dict[str, Any]) -> dict[str, Any]:
    """A table row → one ``/history`` entry (snake_case, RFC 3339 times)."""

    def iso(value: Any) -> str | None:
        return value.isoformat() if isinstance(value, datetime) else value

    entry = {c: row.get(c) for c in COLUMNS if c != "result"}
    entry["started_at"] = iso(entry["started_at"])
    entry["finished_at"] = iso(entry["finished_at"])
    entry["result"] = row.get("result")
    return entry
