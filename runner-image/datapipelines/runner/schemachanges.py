"""What a run changed in the destination's schema: dlt's schema before the run (as restored from
the destination) against dlt's schema after the load, as the shared contract's SchemaChange
(TableAdded, ColumnAdded, TypeChanged). dlt's own `_dlt_*` tables are left out."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported when the first change is made: not on the start-up path
    from datapipelines.resources.run import SchemaChange

#: the contract's bound on status.runnerResult.schemaChanges
MAX_CHANGES = 200

Snapshot = dict[str, dict[str, str | None]]  # table -> column -> data type


def snapshot(schema: Any) -> Snapshot:
    """Tables and column types of the schema's data tables (complete columns only)."""
    if schema is None:
        return {}
    tables: Snapshot = {}
    for table in schema.data_tables():
        columns = {
            name: column.get("data_type")
            for name, column in (table.get("columns") or {}).items()
            if column.get("data_type")
        }
        if columns:
            tables[table["name"]] = columns
    return tables


def diff(before: Snapshot, after: Snapshot) -> list[SchemaChange]:
    """The changes from `before` to `after`, sorted by table then column. A new table is one
    TableAdded (its columns are in the report, not listed one by one)."""
    from datapipelines.resources.run import SchemaChange, SchemaChangeKind

    changes: list[SchemaChange] = []
    for table in sorted(after):
        columns = after[table]
        if table not in before:
            changes.append(SchemaChange(kind=SchemaChangeKind.TABLE_ADDED, table=table))
            continue
        known = before[table]
        for column in sorted(columns):
            data_type = columns[column]
            if column not in known:
                changes.append(
                    SchemaChange(
                        kind=SchemaChangeKind.COLUMN_ADDED,
                        table=table,
                        column=column,
                        data_type=data_type,
                    )
                )
            elif known[column] != data_type:
                changes.append(
                    SchemaChange(
                        kind=SchemaChangeKind.TYPE_CHANGED,
                        table=table,
                        column=column,
                        data_type=data_type,
                        previous_type=known[column],
                    )
                )
    return changes


def describe(change: SchemaChange, after: Snapshot) -> str:
    """One line of the report for a change."""
    from datapipelines.resources.run import SchemaChangeKind

    if change.kind is SchemaChangeKind.TABLE_ADDED:
        columns = after.get(change.table, {})
        listed = ", ".join(f"{c} {t}" for c, t in columns.items())
        return f"table {change.table} added ({listed})"
    if change.kind is SchemaChangeKind.COLUMN_ADDED:
        return f"column {change.table}.{change.column} added ({change.data_type})"
    return (
        f"column {change.table}.{change.column} changed type "
        f"{change.previous_type} -> {change.data_type}"
    )
