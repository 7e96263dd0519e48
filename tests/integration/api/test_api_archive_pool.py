"""The API's history archive reads through a bounded pool, against a real PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from datapipelines.api.archive import PostgresArchive
from datapipelines.api.errors import ArchiveUnavailable
from datapipelines.resources import history

pytestmark = [pytest.mark.postgres, pytest.mark.asyncio(loop_scope="session")]


async def test_a_burst_of_history_reads_shares_a_bounded_pool(postgres_server: Any) -> None:
    database = postgres_server.create_database()
    conn = postgres_server.connect(database)
    with conn.cursor() as cur:
        cur.execute(history.DDL)
    conn.close()
    archive = PostgresArchive(postgres_server.dsn(database), max_size=3)
    before = postgres_server.query(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", database
    )[0][0]
    try:
        results = await asyncio.gather(*(archive.recent([], 10) for _ in range(50)))
        assert all(r == [] for r in results)
        during = postgres_server.query(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", database
        )[0][0]
        assert during - before <= 3 and archive.pool_size <= 3
    finally:
        await archive.close()
    assert archive.pool_size == 0


async def test_an_unreachable_archive_is_a_clear_error() -> None:
    archive = PostgresArchive("postgresql://u:p@127.0.0.1:9/none", timeout=2)
    try:
        with pytest.raises(ArchiveUnavailable, match="cannot be read"):
            await archive.recent([], 1)
    finally:
        await archive.close()


async def test_the_archive_keeps_a_runs_log_for_good(postgres_server: Any) -> None:
    """A run's kept log goes into the archive row (result.log) with the run; the API reads it
    back for a run the history limit removed, only in the namespaces asked for."""
    import json

    from datapipelines.api.services import archived_logs_out
    from datapipelines.runner.keptlog import LogKeeper

    keeper = LogKeeper()
    keeper.add("extracting items")
    keeper.add("bad credentials: the source rejected the login")
    run = {
        "metadata": {"name": "crm-x1", "namespace": "team-a", "labels": {}},
        "spec": {"connectionName": "crm", "trigger": "api"},
        "status": {
            "phase": "Failed",
            "result": {"success": False, "error": "bad credentials: …"},
            "runnerResult": {"success": False, "log": keeper.kept().model_dump(by_alias=True)},
        },
    }
    row = history.run_to_row(run)
    assert row is not None and row["result"]["log"]["data"]
    database = postgres_server.create_database()
    conn = postgres_server.connect(database)
    with conn.cursor() as cur:
        cur.execute(history.DDL)
        cur.execute(history.INSERT_SQL, {**row, "result": json.dumps(row["result"])})
    conn.commit()
    conn.close()
    archive = PostgresArchive(postgres_server.dsn(database))
    try:
        found = await archive.archived_log(["team-a"], "crm-x1")
        hidden = await archive.archived_log(["team-b"], "crm-x1")
        every = await archive.archived_log([], "crm-x1")
    finally:
        await archive.close()
    assert hidden is None and found is not None and every is not None
    out = archived_logs_out("crm-x1", found, tail_lines=1)
    assert (out.source, out.connection, out.phase) == ("stored", "crm", "Failed")
    assert out.text == "bad credentials: the source rejected the login\n"
