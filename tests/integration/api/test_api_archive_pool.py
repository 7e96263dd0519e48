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
