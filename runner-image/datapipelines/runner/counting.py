"""`rows_inserted`, counted IN THE DESTINATION: rows of the run's load ids in each root table
(`_dlt_load_id`) and, for nested tables, rows whose parent row is one of those.

dlt's normalize counts are not used for it (with `csv` they count cells, dlt-hub/dlt#4461, and
they count incoming rows, not what a `merge` kept). Only the tables the run wrote to are
counted: a filtered count per table, not a scan of every table of the dataset.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

log = logging.getLogger(__name__)

MAX_DEPTH = 20


def data_tables(schema: Any) -> dict[str, dict[str, Any]]:
    """The schema's data tables that have columns, by name (dlt's own `_dlt_*` tables excluded)."""
    if schema is None:
        return {}
    return {t["name"]: t for t in schema.data_tables() if t.get("columns")}


def rows_of_loads(
    client: Any, schema: Any, name: str, select: str, n_load_ids: int, depth: int = 0
) -> str | None:
    """SQL selecting `select` from the rows of table `name` that belong to the load ids (as
    `n_load_ids` placeholders), following `_dlt_parent_id` up to a root table; None when the
    table cannot be tied to a load id."""
    table = schema.tables.get(name)
    if table is None or depth > MAX_DEPTH:
        return None
    qualified = client.make_qualified_table_name(name)
    columns = table.get("columns", {})
    if "_dlt_load_id" in columns:
        placeholders = ", ".join(["%s"] * n_load_ids)
        return f"SELECT {select} FROM {qualified} WHERE _dlt_load_id IN ({placeholders})"
    parent = table.get("parent")
    if parent and "_dlt_parent_id" in columns:
        parent_ids = rows_of_loads(client, schema, parent, "_dlt_id", n_load_ids, depth + 1)
        if parent_ids is None:
            return None
        return f"SELECT {select} FROM {qualified} WHERE _dlt_parent_id IN ({parent_ids})"
    return None


def count_loaded_rows(
    client: Any,
    schema: Any,
    load_ids: list[str],
    existing: set[str],
    only: Iterable[str] | None = None,
) -> dict[str, int]:
    """Rows of `load_ids` per table, counted with SQL in the destination.

    `existing` holds the dataset's table names; `only`, when given, the tables the load wrote
    to (the others cannot hold its rows)."""
    if not load_ids:
        return {}
    tables = data_tables(schema)
    names = [n for n in tables if n in existing]
    if only is not None:
        wanted = set(only)
        names = [n for n in names if n in wanted]
    counts: dict[str, int] = {}
    for name in names:
        sql = rows_of_loads(client, schema, name, "count(*)", len(load_ids))
        if sql is None:
            log.warning("table %s has no _dlt_load_id: its rows are not counted", name)
            continue
        rows = client.execute_sql(sql, *load_ids)
        count = int(rows[0][0]) if rows else 0
        if count:
            counts[name] = count
    return counts
