"""The runner's load journal: a small table of its own in the destination dataset.

    <dataset>._datapipelines_loads(pipeline_name, load_id, run_name, attempt, status,
                                   started_at, finished_at, records_extracted, rows_inserted,
                                   schema_changes)

A row is written (status `loading`) BEFORE dlt loads a package, and set to `loaded` after. dlt
itself records a package as complete in `_dlt_loads` only after its last job, so at the start of
an attempt the journal tells apart (recovery.py):

* `loading` and in `_dlt_loads` — the package did land (the pod died before it could report):
  it is this run's result if `run_name` is this run's;
* `loading` and not in `_dlt_loads` — a partial load: its rows are removed (`rolled_back`).

The table holds one row per package (finished rows older than `KEEP_DAYS` are pruned): reading
it is cheap however large the data tables are. All functions take an open dlt sql client of
the pipeline's dataset (PostgreSQL or DuckDB).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

JOURNAL_TABLE = "_datapipelines_loads"
LOADING = "loading"
LOADED = "loaded"
ROLLED_BACK = "rolled_back"
#: finished entries are kept this long (a run's retries happen within its deadline, ≤ 24 h)
KEEP_DAYS = 30

_COLUMNS = (
    "pipeline_name VARCHAR NOT NULL, "
    "load_id VARCHAR NOT NULL, "
    "run_name VARCHAR, "
    "attempt VARCHAR, "
    "status VARCHAR NOT NULL, "
    "started_at TIMESTAMP WITH TIME ZONE NOT NULL, "
    "finished_at TIMESTAMP WITH TIME ZONE, "
    "records_extracted BIGINT, "
    "rows_inserted BIGINT, "
    "schema_changes VARCHAR, "
    "namespace VARCHAR, "
    "PRIMARY KEY (pipeline_name, load_id)"
)


@dataclass
class JournalEntry:
    load_id: str
    run_name: str | None
    status: str = LOADING
    attempt: str | None = None
    records_extracted: int | None = None
    schema_changes: list[dict[str, Any]] = field(default_factory=list)
    namespace: str | None = None


def existing_tables(client: Any) -> set[str]:
    """Names of the tables in the client's dataset (one information_schema query)."""
    rows = client.execute_sql(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
        client.dataset_name,
    )
    return {row[0] for row in rows or []}


def _table(client: Any) -> str:
    return str(client.make_qualified_table_name(JOURNAL_TABLE))


def ensure(client: Any) -> None:
    """Creates the dataset and the journal table when missing."""
    if not client.has_dataset():
        client.create_dataset()
    client.execute_sql(f"CREATE TABLE IF NOT EXISTS {_table(client)} ({_COLUMNS})")
    # journals written before the namespace column existed
    client.execute_sql(f"ALTER TABLE {_table(client)} ADD COLUMN IF NOT EXISTS namespace VARCHAR")


def other_namespaces(client: Any, pipeline_name: str, namespace: str) -> set[str]:
    """Namespaces other than ``namespace`` whose connection of this name loaded into this
    dataset: two connections named alike in two namespaces would share dlt's state and this
    journal (one pipeline name), so the second is refused (sync.py)."""
    rows = client.execute_sql(
        f"SELECT DISTINCT namespace FROM {_table(client)} WHERE pipeline_name = %s "
        "AND namespace IS NOT NULL AND namespace <> %s",
        pipeline_name,
        namespace,
    )
    return {str(row[0]) for row in rows or []}


def open_entries(client: Any, pipeline_name: str, run_key: str) -> list[JournalEntry]:
    """Entries still `loading` (any run of this pipeline) and this run's `loaded` ones."""
    rows = client.execute_sql(
        f"SELECT load_id, run_name, status, attempt, records_extracted, schema_changes "
        f"FROM {_table(client)} WHERE pipeline_name = %s "
        f"AND (status = %s OR (status = %s AND run_name = %s)) ORDER BY load_id",
        pipeline_name,
        LOADING,
        LOADED,
        run_key,
    )
    return [
        JournalEntry(
            load_id=str(load_id),
            run_name=run_name,
            status=str(status),
            attempt=attempt,
            records_extracted=None if records is None else int(records),
            schema_changes=json.loads(changes) if changes else [],
        )
        for load_id, run_name, status, attempt, records, changes in rows or []
    ]


def begin(client: Any, pipeline_name: str, entry: JournalEntry) -> None:
    """Records that `entry.load_id` is about to be loaded (before dlt writes anything)."""
    client.execute_sql(
        f"INSERT INTO {_table(client)} (pipeline_name, load_id, run_name, attempt, status, "
        f"started_at, records_extracted, schema_changes, namespace) "
        f"VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        pipeline_name,
        entry.load_id,
        entry.run_name,
        entry.attempt,
        LOADING,
        datetime.now(UTC),
        entry.records_extracted,
        json.dumps(entry.schema_changes, separators=(",", ":")),
        entry.namespace,
    )


def prune(client: Any, pipeline_name: str, keep_days: int = KEEP_DAYS) -> None:
    """Deletes this pipeline's finished entries older than `keep_days`."""
    client.execute_sql(
        f"DELETE FROM {_table(client)} WHERE pipeline_name = %s AND status <> %s "
        "AND started_at < %s",
        pipeline_name,
        LOADING,
        datetime.now(UTC) - timedelta(days=keep_days),
    )


def set_status(
    client: Any, pipeline_name: str, load_id: str, status: str, rows_inserted: int | None = None
) -> None:
    client.execute_sql(
        f"UPDATE {_table(client)} SET status = %s, finished_at = %s, "
        f"rows_inserted = COALESCE(%s, rows_inserted) WHERE pipeline_name = %s AND load_id = %s",
        status,
        datetime.now(UTC),
        rows_inserted,
        pipeline_name,
        load_id,
    )


def completed_loads(client: Any, load_ids: list[str], tables: set[str]) -> set[str]:
    """The `load_ids` dlt recorded as completely loaded (`_dlt_loads`, status 0)."""
    if not load_ids or "_dlt_loads" not in tables:
        return set()
    placeholders = ", ".join(["%s"] * len(load_ids))
    rows = client.execute_sql(
        f"SELECT load_id FROM {client.make_qualified_table_name('_dlt_loads')} "
        f"WHERE status = 0 AND load_id IN ({placeholders})",
        *load_ids,
    )
    return {str(row[0]) for row in rows or []}
