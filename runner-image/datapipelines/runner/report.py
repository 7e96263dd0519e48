"""The human-readable report of a run (status.runnerResult.report, the pod log)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from .schemachanges import Snapshot, describe

if TYPE_CHECKING:
    from datapipelines.resources.connection import ConnectionSpec
    from datapipelines.resources.run import SchemaChange


def render_report(
    connection_name: str,
    spec: ConnectionSpec,
    destination: str,
    *,
    load_ids: Sequence[str],
    records_extracted: int,
    rows_by_table: dict[str, int],
    timings: dict[str, float],
    elapsed: float,
    schema_changes: Sequence[SchemaChange] = (),
    schema_after: Snapshot | None = None,
    notes: Sequence[str] = (),
    dlt_info: str = "",
    counted_in: str = "counted in the destination",
) -> str:
    """Tables, rows, load ids, schema changes, timings; then dlt's own load info."""
    rows = sum(rows_by_table.values())
    lines = [
        f"connection {connection_name}: {spec.type.value} -> {destination}, "
        f"dataset {spec.schema_name}",
        f"finished {datetime.now(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')} in {elapsed:.2f}s",
        f"load ids: {', '.join(load_ids) or 'none (nothing new to load)'}",
        f"records extracted: {records_extracted}",
        f"rows inserted: {rows} ({counted_in})",
    ]
    lines.extend(notes)
    if rows_by_table:
        lines.append("tables:")
        width = max(len(t) for t in rows_by_table)
        for table, count in sorted(rows_by_table.items()):
            lines.append(f"  {table.ljust(width)}  {count} rows")
    if schema_changes:
        lines.append(f"schema changes ({len(schema_changes)}):")
        lines.extend(f"  {describe(c, schema_after or {})}" for c in schema_changes)
    else:
        lines.append("schema changes: none")
    if timings:
        lines.append(
            "timings: " + ", ".join(f"{step} {secs:.2f}s" for step, secs in timings.items())
        )
    if dlt_info:
        lines.append("")
        lines.append(dlt_info.strip())
    return "\n".join(lines)
