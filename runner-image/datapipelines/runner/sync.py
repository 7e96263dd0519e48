"""One sync: build the dlt pipeline, run it, count what landed in the destination, report.

`rows_inserted` is counted IN THE DESTINATION: rows of this run's load ids in each root table
(`_dlt_load_id`) and, for nested tables, rows whose parent row is one of those — never dlt's
normalize counts (wrong with csv, and they count incoming rows, not what a merge kept).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dlt

from .config import ConnectionSpec, pipeline_name
from .destinations import build_destination
from .progress import ProgressCollector
from .secrets import redact
from .sources import build_source

log = logging.getLogger(__name__)


@dataclass
class SyncOutcome:
    load_ids: list[str]
    rows_by_table: dict[str, int]
    records_extracted: int
    progress_counts: dict[str, dict[str, int]]
    report: str
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def rows_inserted(self) -> int:
        return sum(self.rows_by_table.values())


class SyncFailed(Exception):
    """The sync failed; `source`/`destination` describe the two ends for the error line."""

    def __init__(self, cause: BaseException, destination: str, source: str) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.destination = destination
        self.source = source


def describe_source(spec: ConnectionSpec) -> str:
    if spec.source.rest_api is not None and spec.type == "rest_api":
        return f"rest_api {spec.source.rest_api.base_url}"
    if spec.type == "sql_database":
        return "source database"
    fs = spec.source.filesystem
    return f"files {fs.bucket_url}/{fs.file_glob}" if fs else "source"


def run_sync(
    spec: ConnectionSpec,
    connection_name: str,
    pipelines_dir: Path,
    data_dir: str,
    collector: ProgressCollector,
) -> SyncOutcome:
    source_desc = describe_source(spec)
    destination_desc: str = spec.destination.type
    try:
        source, arrow = build_source(spec, pipeline_name(connection_name))
        setup = build_destination(spec, data_dir, arrow)
    except Exception as exc:
        raise SyncFailed(exc, destination_desc, source_desc) from exc
    destination_desc = setup.description
    pipeline = dlt.pipeline(
        pipeline_name=pipeline_name(connection_name),
        pipelines_dir=str(pipelines_dir),
        destination=setup.destination,
        dataset_name=spec.schema_name,
        progress=collector,
    )
    if pipeline.has_pending_data:
        # a package left by an earlier failed run would be loaded INSTEAD of the new data; drop
        # the local working dir: the state (incremental cursors) comes back from the destination
        log.warning("dropping pending load packages of an earlier failed run; state is restored")
        pipeline = pipeline.drop()
    started = time.monotonic()
    try:
        info = pipeline.run(source, loader_file_format=setup.loader_file_format)
    except Exception as exc:
        raise SyncFailed(exc, destination_desc, source_desc) from exc
    load_ids = list(info.loads_ids)
    collector.set_stage("load")
    counted_in = "counted in the destination"
    try:
        rows_by_table = count_loaded_rows(pipeline, load_ids)
    except Exception as exc:
        # the data IS loaded: failing now would make a retry load it twice (append)
        log.warning("counting rows in the destination failed: %s", redact(str(exc)))
        rows_by_table = collector.counts().get("normalize", {}) if load_ids else {}
        counted_in = f"from dlt's normalize counts: the destination count failed ({exc})"
    elapsed = time.monotonic() - started
    timings = step_timings(pipeline)
    counts = collector.counts()
    counts["load"] = dict(rows_by_table)
    outcome = SyncOutcome(
        load_ids=load_ids,
        rows_by_table=rows_by_table,
        records_extracted=collector.records_extracted(),
        progress_counts=counts,
        report="",
        timings=timings,
    )
    outcome.report = redact(
        render_report(
            connection_name, spec, destination_desc, outcome, elapsed, str(info), counted_in
        )
    )
    return outcome


def step_timings(pipeline: Any) -> dict[str, float]:
    trace = pipeline.last_trace
    timings: dict[str, float] = {}
    for step in getattr(trace, "steps", []) or []:
        if step.started_at and step.finished_at:
            seconds = (step.finished_at - step.started_at).total_seconds()
            if step.step in ("sync", "extract", "normalize", "load"):
                timings[step.step] = timings.get(step.step, 0.0) + seconds
    return timings


def _tables_to_count(schema: Any) -> list[dict[str, Any]]:
    return [t for t in schema.data_tables() if t.get("columns")]


def count_loaded_rows(pipeline: Any, load_ids: list[str]) -> dict[str, int]:
    """Rows of `load_ids` per table, counted with SQL in the destination."""
    if not load_ids:
        return {}
    schema = pipeline.default_schema
    tables = {t["name"]: t for t in _tables_to_count(schema)}
    counts: dict[str, int] = {}
    with pipeline.sql_client() as client:
        placeholders = ", ".join(["%s"] * len(load_ids))

        def rows_of_run(name: str, select: str, depth: int = 0) -> str | None:
            """SQL selecting `select` from this run's rows of table `name`."""
            table = tables.get(name) or schema.tables.get(name)
            if table is None or depth > 20:
                return None
            qualified = client.make_qualified_table_name(name)
            columns = table.get("columns", {})
            if "_dlt_load_id" in columns:
                return f"SELECT {select} FROM {qualified} WHERE _dlt_load_id IN ({placeholders})"
            parent = table.get("parent")
            if parent and "_dlt_parent_id" in columns:
                parent_ids = rows_of_run(parent, "_dlt_id", depth + 1)
                if parent_ids is None:
                    return None
                return f"SELECT {select} FROM {qualified} WHERE _dlt_parent_id IN ({parent_ids})"
            return None

        existing = {
            row[0]
            for row in client.execute_sql(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                client.dataset_name,
            )
            or []
        }
        for name in tables:
            if name not in existing:
                continue
            sql = rows_of_run(name, "count(*)")
            if sql is None:
                log.warning("table %s has no _dlt_load_id: its rows are not counted", name)
                continue
            rows = client.execute_sql(sql, *load_ids)
            count = int(rows[0][0]) if rows else 0
            if count:
                counts[name] = count
    return counts


def render_report(
    connection_name: str,
    spec: ConnectionSpec,
    destination: str,
    outcome: SyncOutcome,
    elapsed: float,
    dlt_info: str,
    counted_in: str = "counted in the destination",
) -> str:
    """A human-readable summary: tables, rows, load ids, timings; then dlt's own load info."""
    lines = [
        f"connection {connection_name}: {spec.type} -> {destination}, dataset {spec.schema_name}",
        f"finished {datetime.now(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')} in {elapsed:.2f}s",
        f"load ids: {', '.join(outcome.load_ids) or 'none (nothing new to load)'}",
        f"records extracted: {outcome.records_extracted}",
        f"rows inserted: {outcome.rows_inserted} ({counted_in})",
    ]
    if outcome.rows_by_table:
        lines.append("tables:")
        width = max(len(t) for t in outcome.rows_by_table)
        for table, rows in sorted(outcome.rows_by_table.items()):
            lines.append(f"  {table.ljust(width)}  {rows} rows")
    if outcome.timings:
        lines.append(
            "timings: " + ", ".join(f"{step} {secs:.2f}s" for step, secs in outcome.timings.items())
        )
    lines.append("")
    lines.append(dlt_info.strip())
    return "\n".join(lines)
