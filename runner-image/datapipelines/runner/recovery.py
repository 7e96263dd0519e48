"""What an attempt does first: finish or roll back what earlier attempts left in the destination.

A Job retries a failed pod with a fresh working dir, so the local load package of a failed
attempt is gone; only the destination and the journal (journal.py) remain. At the start of each
attempt, for the journal's open entries of this pipeline:

* a package dlt completed (`_dlt_loads`) is marked `loaded`; if it is THIS run's (same
  DATAPIPELINES_RUN_NAME) the run is already done: its counts are reported, nothing is
  extracted again (a pod killed after the load but before it reported);
* a package dlt did not complete is rolled back: its rows are deleted from every table of the
  dataset, in one transaction, then it is marked `rolled_back` and the attempt extracts again
  from the state dlt restored (dlt only restores state of completed loads, so the cursor is
  the one before that package).

Rolling back deletes the rows whose `_dlt_load_id` is the package's from every table that has
that column (found in information_schema, so even a table the stored schema missed), the
package's state row included, then nested rows whose parent row no longer exists, top-down.
Those deletes scan the tables; they only run when something is to be rolled back.

The journal only matters before the load, so recovery runs in a thread while the source is
read (`RecoveryTask`): the first request at the source does not wait for it, and
`StopWhenAlreadyLoaded` ends the extraction early when it finds this run already loaded.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field
from typing import Any, ClassVar

from dlt.extract.items_transform import ItemTransform

from . import journal
from .journal import JournalEntry

log = logging.getLogger(__name__)


@dataclass
class Recovery:
    loaded: list[JournalEntry] = field(default_factory=list)  # this run's, already complete
    rolled_back: list[str] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)  # other runs' packages found complete


def nested_parents(schema: Any) -> dict[str, str]:
    """{nested table: its parent table} of a dlt schema (a copy: safe to use in a thread)."""
    if schema is None:
        return {}
    return {name: t["parent"] for name, t in list(schema.tables.items()) if t.get("parent")}


def stored_parents(client: Any, schema_name: str, existing: set[str]) -> dict[str, str]:
    """{nested table: parent} from the newest schema dlt stored in the destination
    (`_dlt_version`): a pod that never completed a load has no local schema to tell."""
    if "_dlt_version" not in existing:
        return {}
    rows = client.execute_sql(
        f"SELECT schema FROM {client.make_qualified_table_name('_dlt_version')} "
        "WHERE schema_name = %s ORDER BY inserted_at DESC LIMIT 1",
        schema_name,
    )
    try:
        tables = json.loads(rows[0][0]).get("tables", {}) if rows else {}
    except (ValueError, TypeError, AttributeError):
        log.warning("stored schema %s unreadable: known nested tables only", schema_name)
        return {}
    return {name: t["parent"] for name, t in tables.items() if t.get("parent")}


def recover(
    client: Any,
    parents: dict[str, str],
    pipeline_name: str,
    run_key: str,
    schema_name: str | None = None,
) -> Recovery:
    """Resolves the journal's open entries (see the module doc). `parents`: nested_parents()
    of the restored schema; with `schema_name`, the destination's stored schema adds its own."""
    outcome = Recovery()
    existing = journal.existing_tables(client)
    if journal.JOURNAL_TABLE not in existing:
        return outcome
    entries = journal.open_entries(client, pipeline_name, run_key)
    if not entries:
        return outcome
    completed = journal.completed_loads(client, [e.load_id for e in entries], existing)
    if schema_name and any(e.load_id not in completed for e in entries):
        parents = {**stored_parents(client, schema_name, existing), **parents}
    for entry in entries:
        if entry.load_id in completed:
            if entry.status == journal.LOADING:
                journal.set_status(client, pipeline_name, entry.load_id, journal.LOADED)
            if entry.run_name == run_key:
                outcome.loaded.append(entry)
            else:
                outcome.finished.append(entry.load_id)
            continue
        log.warning(
            "load package %s of run %s was not completely loaded (attempt %s): rolling it back",
            entry.load_id,
            entry.run_name,
            entry.attempt,
        )
        roll_back(client, parents, pipeline_name, entry.load_id)
        outcome.rolled_back.append(entry.load_id)
    return outcome


def _tables_with_load_id(client: Any) -> list[str]:
    rows = client.execute_sql(
        "SELECT table_name FROM information_schema.columns "
        "WHERE table_schema = %s AND column_name = %s",
        client.dataset_name,
        "_dlt_load_id",
    )
    return sorted({str(row[0]) for row in rows or []})


def nested_top_down(parents: dict[str, str], existing: set[str]) -> list[tuple[str, str]]:
    """(nested table, parent table) pairs of existing tables, parents before their children."""
    pairs: list[tuple[int, str, str]] = []
    for name, parent in parents.items():
        if name not in existing or parent not in existing:
            continue
        depth, up = 1, parents.get(parent)
        while up is not None and depth < 50:
            depth, up = depth + 1, parents.get(up)
        pairs.append((depth, name, parent))
    return [(name, parent) for _, name, parent in sorted(pairs)]


def roll_back(client: Any, parents: dict[str, str], pipeline_name: str, load_id: str) -> None:
    """Deletes every row of `load_id` (and the nested rows hanging off them), atomically, and
    marks the package `rolled_back` in the journal."""
    existing = journal.existing_tables(client)
    with client.begin_transaction():
        for name in _tables_with_load_id(client):
            client.execute_sql(
                f"DELETE FROM {client.make_qualified_table_name(name)} WHERE _dlt_load_id = %s",
                load_id,
            )
        for nested, parent in nested_top_down(parents, existing):
            client.execute_sql(
                f"DELETE FROM {client.make_qualified_table_name(nested)} AS c WHERE NOT EXISTS "
                f"(SELECT 1 FROM {client.make_qualified_table_name(parent)} AS p "
                f"WHERE p._dlt_id = c._dlt_parent_id)"
            )
        journal.set_status(client, pipeline_name, load_id, journal.ROLLED_BACK)
    log.info("rolled back load package %s", load_id)


class AlreadyLoaded(Exception):
    """Raised inside the extraction: an earlier attempt of this run already loaded it."""


class RecoveryTask:
    """`recover()` in a thread, on a client created (not opened) by the caller's thread."""

    def __init__(
        self,
        client: Any,
        parents: dict[str, str],
        pipeline_name: str,
        run_key: str,
        schema_name: str | None = None,
    ) -> None:
        self.client = client
        self.parents = parents
        self.pipeline_name = pipeline_name
        self.run_key = run_key
        self.schema_name = schema_name
        self.already_loaded = threading.Event()
        self._outcome: Recovery | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="recovery", daemon=True)

    def start(self) -> RecoveryTask:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            with self.client as client:
                self._outcome = recover(
                    client, self.parents, self.pipeline_name, self.run_key, self.schema_name
                )
            if self._outcome.loaded:
                self.already_loaded.set()
        except BaseException as exc:  # handed to the caller's thread by result()
            self._error = exc

    def result(self) -> Recovery:
        """Waits for the recovery; raises what it raised."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._outcome is not None
        return self._outcome

    def wait(self) -> None:
        self._thread.join()


class StopWhenAlreadyLoaded(ItemTransform[Any, dict[str, Any]]):
    """A pipe step ending the extraction once the recovery found this run already loaded."""

    placement_affinity: ClassVar[float] = 0.5

    def __init__(self, task: RecoveryTask) -> None:
        super().__init__(lambda item: item)
        self.task = task

    def __call__(self, item: Any, meta: Any = None) -> Any:
        if self.task.already_loaded.is_set():
            raise AlreadyLoaded(self.task.run_key)
        return item
