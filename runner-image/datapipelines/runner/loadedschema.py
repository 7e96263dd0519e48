"""The destination's schema after a run, as the shared contract's LoadedSchema: the tables and
columns dlt created (its own `_dlt_*` tables left out), with types, primary keys and child
tables. The runner reports it in status.runnerResult.loadedSchema; the API answers
`GET /connections/{name}/schema` from it, with no pod and no destination connection."""

from __future__ import annotations

from typing import Any

from datapipelines.resources.run import (
    MAX_SCHEMA_COLUMNS,
    MAX_SCHEMA_TABLES,
    LoadedColumn,
    LoadedSchema,
    LoadedTable,
)


def loaded_schema(schema: Any) -> LoadedSchema | None:
    """The data tables of a dlt schema with their complete columns (those with a type: the
    ones that exist in the destination), bounded by the contract (`truncated` says so)."""
    if schema is None:
        return None
    truncated = False
    tables: list[LoadedTable] = []
    for table in schema.data_tables():
        columns = [
            LoadedColumn(
                name=name,
                data_type=column.get("data_type"),
                nullable=column.get("nullable"),
                primary_key=bool(column.get("primary_key")) or None,
            )
            for name, column in (table.get("columns") or {}).items()
            if column.get("data_type")
        ]
        if not columns:
            continue  # never materialized
        if len(columns) > MAX_SCHEMA_COLUMNS:
            columns, truncated = columns[:MAX_SCHEMA_COLUMNS], True
        if len(tables) == MAX_SCHEMA_TABLES:
            truncated = True
            break
        tables.append(
            LoadedTable(
                name=table["name"],
                parent=table.get("parent"),
                write_disposition=table.get("write_disposition"),
                columns=columns,
            )
        )
    return LoadedSchema(
        name=schema.name,
        version=schema.version,
        tables=tables,
        truncated=truncated or None,
    )
