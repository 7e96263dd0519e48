"""No duplicate rows and no gaps after any retry (issue 12), on a real PostgreSQL (and DuckDB).

Every case loads nested data (items + items__tags: a load cut in the middle can leave one table
loaded and the other not) and checks each table against the source, exactly. Loads are cut
for real: a trigger makes PostgreSQL sleep inside the COPY (or merge) into items__tags, and
the test terminates the loader's connection, stops the server, or SIGKILLs the runner then.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.integration.runner.runnerkit import (
    KILL_AFTER_LOAD,
    KILL_BEFORE_COMPLETE,
    Runner,
    duckdb_destination,
    duckdb_query,
    postgres_destination,
    rest_resource,
    rest_spec,
)
from tests.support.postgres import PostgresServer

pytestmark = pytest.mark.postgres

#: the runner's own retries of a lost destination, short for tests (default 2, 5, 10 s)
QUICK = {"DATAPIPELINES_RETRY_DELAYS": "0.3,0.6,1"}


class SlowLoads:
    """Loads into `table` sleep `seconds` in PostgreSQL (a BEFORE STATEMENT trigger), so a
    test can act while one is in flight. `cut(action)` waits for that moment, acts once and
    removes the trigger (the retry then loads at full speed)."""

    def __init__(self, server: Any, database: str, table: str = "items__tags") -> None:
        self.server = server
        self.database = database
        self.table = f"demo_data.{table}"
        self.cuts = 0
        self.thread: threading.Thread | None = None

    def sql(self, statement: str) -> list[tuple[Any, ...]]:
        return self.server.query(statement, database=self.database)

    def install(self, seconds: float = 2.0) -> SlowLoads:
        self.sql(
            "CREATE OR REPLACE FUNCTION demo_data.slow_load() RETURNS trigger LANGUAGE plpgsql "
            f"AS $$ BEGIN PERFORM pg_sleep({seconds}); RETURN NULL; END $$; "
            f"CREATE TRIGGER slow_load BEFORE INSERT ON {self.table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION demo_data.slow_load()"
        )
        return self

    def remove(self) -> None:
        self.sql(f"DROP TRIGGER IF EXISTS slow_load ON {self.table}")

    def loading(self, timeout: float = 60) -> bool:
        """Waits until a backend of the database sleeps in the trigger."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rows = self.server.query(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
                "AND wait_event = 'PgSleep'",
                self.database,
            )
            if rows[0][0]:
                return True
            time.sleep(0.05)
        return False

    def terminate_loader(self) -> None:
        self.server.query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            self.database,
        )

    def cut(self, action: Callable[[], None], remove: bool = True) -> SlowLoads:
        def run() -> None:
            if self.loading():
                action()
                self.cuts += 1
                if remove:
                    self.remove()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        return self

    def join(self) -> None:
        assert self.thread is not None
        self.thread.join(timeout=120)


def counts(server: Any, database: str) -> tuple[int, int, int]:
    """(items, distinct item ids, items__tags) in the destination."""
    items, ids = server.query(
        "SELECT count(*), count(DISTINCT id) FROM demo_data.items", database=database
    )[0]
    tags = server.query("SELECT count(*) FROM demo_data.items__tags", database=database)[0][0]
    return items, ids, tags


def journal(server: Any, database: str) -> list[tuple[str, str | None]]:
    return server.query(
        "SELECT status, run_name FROM demo_data._datapipelines_loads ORDER BY started_at",
        database=database,
    )


def nested_spec(url: str, destination: dict, disposition: str, incremental: bool) -> dict:
    return rest_spec(
        url,
        destination,
        write_disposition=disposition,
        resources=[rest_resource(incremental=incremental)],
    )


# rows the second run inserts: 500 more items (2 tags each) on top of 500; replace loads all
SECOND_RUN_ROWS = {"append": 1500, "merge": 1500, "replace": 3000}


@pytest.mark.parametrize("disposition", ["append", "merge", "replace"])
def test_connection_cut_mid_load_is_retried_without_duplicates_or_gaps(
    http_source, runner: Runner, postgres_server, warehouse, disposition: str
) -> None:
    http_source.state.nested = True
    http_source.state.records = 500
    spec = nested_spec(
        http_source.url,
        postgres_destination(postgres_server, warehouse),
        disposition,
        incremental=disposition != "replace",
    )
    assert runner.run(spec, name="cut").exit_code == 0

    http_source.state.records = 1000
    slow = SlowLoads(postgres_server, warehouse).install()
    slow.cut(slow.terminate_loader)
    second = runner.run(spec, name="cut", **QUICK)
    slow.join()

    assert slow.cuts == 1, "the load was never cut"
    assert second.exit_code == 0, second.error
    assert "rolled back first" in second.result["report"]
    assert counts(postgres_server, warehouse) == (1000, 1000, 2000)
    assert second.result["rowsInserted"] == SECOND_RUN_ROWS[disposition]
    assert second.result["progressCounts"]["load"] == {
        "items": SECOND_RUN_ROWS[disposition] // 3,
        "items__tags": 2 * SECOND_RUN_ROWS[disposition] // 3,
    }
    statuses = [status for status, _ in journal(postgres_server, warehouse)]
    assert statuses == ["loaded", "rolled_back", "loaded"]


def test_destination_restarted_mid_load_the_run_goes_on(http_source, runner: Runner) -> None:
    server = PostgresServer().start()
    try:
        server.wait_ready()
        database = server.create_database("warehouse")
        runner.secret("warehouse", "password", server.password)
        http_source.state.nested = True
        http_source.state.records = 500
        spec = nested_spec(http_source.url, postgres_destination(server, database), "append", True)
        assert runner.run(spec, name="restart").exit_code == 0

        def restart() -> None:
            server.stop("fast")
            time.sleep(1)
            server.start()
            server.wait_ready()

        http_source.state.records = 1000
        slow = SlowLoads(server, database).install()
        slow.cut(restart)
        second = runner.run(spec, name="restart", DATAPIPELINES_RETRY_DELAYS="1,2,4,8")
        slow.join()

        assert slow.cuts == 1
        assert second.exit_code == 0, second.error
        assert second.result["rowsInserted"] == 1500
        assert counts(server, database) == (1000, 1000, 2000)
    finally:
        server.destroy()


def test_destination_gone_for_good_fails_and_the_next_run_heals(
    http_source, runner: Runner
) -> None:
    """Down longer than the retries: the run fails (retryable, exit 1) with items loaded and
    items__tags not; once the server is back, the next run removes that and loads it all."""
    server = PostgresServer().start()
    try:
        server.wait_ready()
        database = server.create_database("warehouse")
        runner.secret("warehouse", "password", server.password)
        http_source.state.nested = True
        http_source.state.records = 500
        spec = nested_spec(http_source.url, postgres_destination(server, database), "append", True)
        assert runner.run(spec, name="gone").exit_code == 0

        http_source.state.records = 1000
        slow = SlowLoads(server, database).install(seconds=3)
        slow.cut(lambda: server.stop("fast"), remove=False)
        failed = runner.run(spec, name="gone", DATAPIPELINES_RETRY_DELAYS="0.2,0.2")
        slow.join()

        assert failed.exit_code == 1
        assert failed.error.startswith("destination unreachable: postgres 127.0.0.1:")
        assert "rolled back" in failed.result["report"]
        server.start()
        server.wait_ready()
        slow.remove()
        items, ids, tags = counts(server, database)
        assert items == ids == 1000 and tags == 1000  # items of the failed run, not its tags

        healed = runner.run(spec, name="gone")
        assert healed.exit_code == 0, healed.error
        assert "rolled back first" in healed.result["report"]
        assert healed.result["rowsInserted"] == 1500
        assert counts(server, database) == (1000, 1000, 2000)
    finally:
        server.destroy()


@pytest.mark.parametrize("disposition", ["append", "merge", "replace"])
def test_killed_after_the_load_the_retry_reports_it_and_loads_nothing_again(
    http_source, runner: Runner, postgres_server, warehouse, disposition: str
) -> None:
    """SIGKILL between dlt's load and the report (the Job retries the pod): the retry finds
    the run's package complete, reports its counts and loads nothing again, even for a
    non-incremental append that would otherwise duplicate everything."""
    http_source.state.nested = True
    spec = nested_spec(
        http_source.url, postgres_destination(postgres_server, warehouse), disposition, False
    )
    run = {"DATAPIPELINES_RUN_NAME": "items-x7k2p"}
    killed = runner.run_code(KILL_AFTER_LOAD, spec, name="killed", **run)
    assert killed.exit_code == -signal.SIGKILL, killed.output
    assert killed.result == {}  # nothing reported
    assert counts(postgres_server, warehouse) == (1000, 1000, 2000)
    assert journal(postgres_server, warehouse) == [("loading", "items-x7k2p")]

    retry = runner.run(spec, name="killed", **run)
    assert retry.exit_code == 0, retry.error
    assert "already loaded by an earlier attempt of this run" in retry.result["report"]
    assert retry.result["rowsInserted"] == 3000
    assert retry.result["progressCounts"]["load"] == {"items": 1000, "items__tags": 2000}
    assert [c["table"] for c in retry.result["schemaChanges"]] == ["items", "items__tags"]
    assert counts(postgres_server, warehouse) == (1000, 1000, 2000)
    assert journal(postgres_server, warehouse) == [("loaded", "items-x7k2p")]


@pytest.mark.parametrize("retried_by", ["the same run", "the next run"])
def test_killed_mid_load_the_next_attempt_rolls_back_first(
    http_source, runner: Runner, postgres_server, warehouse, retried_by: str
) -> None:
    http_source.state.nested = True
    http_source.state.records = 500
    spec = nested_spec(
        http_source.url, postgres_destination(postgres_server, warehouse), "append", True
    )
    assert runner.run(spec, name="midload").exit_code == 0

    http_source.state.records = 1000
    slow = SlowLoads(postgres_server, warehouse).install()
    proc = runner.start_cli(spec, name="midload", DATAPIPELINES_RUN_NAME="midload-1")
    slow.cut(proc.kill)
    proc.wait(timeout=120)
    slow.join()
    assert proc.returncode == -signal.SIGKILL
    slow.terminate_loader()  # the killed pod's session, asleep in the trigger

    run_name = "midload-1" if retried_by == "the same run" else "midload-2"
    retry = runner.run(spec, name="midload", DATAPIPELINES_RUN_NAME=run_name)
    assert retry.exit_code == 0, retry.error
    assert "rolled back first" in retry.result["report"]
    assert retry.result["rowsInserted"] == 1500
    assert counts(postgres_server, warehouse) == (1000, 1000, 2000)


@pytest.mark.parametrize("kind", ["postgres", "duckdb"])
def test_a_first_load_killed_before_dlt_recorded_it_is_rolled_back(
    http_source, runner: Runner, postgres_server, warehouse, tmp_path: Path, kind: str
) -> None:
    """Every row of the package landed, `_dlt_loads` does not know it and no state or schema
    was ever restored from there: the retry still finds and removes every table's rows of it
    (nested ones through the schema dlt stored) before loading again."""
    http_source.state.nested = True
    if kind == "postgres":
        destination = postgres_destination(postgres_server, warehouse)

        def count(sql: str) -> list[tuple]:
            return postgres_server.query(sql, database=warehouse)
    else:
        db = tmp_path / "wh" / "first.duckdb"
        destination = duckdb_destination(db)

        def count(sql: str) -> list[tuple]:
            return duckdb_query(db, sql)

    spec = nested_spec(http_source.url, destination, "append", incremental=True)
    run = {"DATAPIPELINES_RUN_NAME": "first-x7k2p"}
    killed = runner.run_code(KILL_BEFORE_COMPLETE, spec, name="first", **run)
    assert killed.exit_code == -signal.SIGKILL, killed.output
    assert count("SELECT count(*) FROM demo_data.items__tags") == [(2000,)]  # all of it landed
    assert count("SELECT count(*) FROM demo_data._dlt_loads") == [(0,)]

    retry = runner.run(spec, name="first", **run)
    assert retry.exit_code == 0, retry.error
    assert "rolled back first" in retry.result["report"]
    assert retry.result["rowsInserted"] == 3000
    assert count("SELECT count(*), count(DISTINCT id) FROM demo_data.items") == [(1000, 1000)]
    assert count("SELECT count(*) FROM demo_data.items__tags") == [(2000,)]


def test_duckdb_killed_after_the_load_the_retry_reports_it(
    http_source, runner: Runner, tmp_path: Path
) -> None:
    http_source.state.nested = True
    db = tmp_path / "wh" / "killed.duckdb"
    spec = nested_spec(http_source.url, duckdb_destination(db), "append", False)
    run = {"DATAPIPELINES_RUN_NAME": "duck-x7k2p"}
    killed = runner.run_code(KILL_AFTER_LOAD, spec, name="killed", **run)
    assert killed.exit_code == -signal.SIGKILL, killed.output

    retry = runner.run(spec, name="killed", **run)
    assert retry.exit_code == 0, retry.error
    assert "already loaded by an earlier attempt of this run" in retry.result["report"]
    assert retry.result["rowsInserted"] == 3000
    assert duckdb_query(db, "SELECT count(*), count(DISTINCT id) FROM demo_data.items") == [
        (1000, 1000)
    ]
    assert duckdb_query(db, "SELECT count(*) FROM demo_data.items__tags") == [(2000,)]
    assert duckdb_query(db, "SELECT status FROM demo_data._datapipelines_loads") == [("loaded",)]


def test_the_journal_keeps_a_month(http_source, runner: Runner, tmp_path: Path) -> None:
    import duckdb

    db = tmp_path / "wh" / "journal.duckdb"
    spec = rest_spec(http_source.url, duckdb_destination(db))
    assert runner.run(spec, name="pruned").exit_code == 0
    with duckdb.connect(str(db)) as conn:
        conn.execute(
            "UPDATE demo_data._datapipelines_loads SET started_at = now() - INTERVAL 40 DAY"
        )
    http_source.state.records = 1100
    assert runner.run(spec, name="pruned").result["rowsInserted"] == 100
    rows = duckdb_query(
        db, "SELECT status, started_at > now() - INTERVAL 1 DAY FROM demo_data._datapipelines_loads"
    )
    assert rows == [("loaded", True)]
