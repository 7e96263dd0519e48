"""The optional PostgreSQL run archive (DATAPIPELINES_HISTORY_DSN) with a real PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from datapipelines.resources import history
from tests.integration.operator.opcluster import Cluster
from tests.support.processes import OperatorProcess
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.postgres, pytest.mark.asyncio(loop_scope="session")]

STUCK = {"image": "localhost/datapipelines-never-pulled:none"}


async def _gone(cluster: Cluster, run: str) -> bool:
    return await cluster.get_run(run) is None


async def test_finished_runs_are_archived_beyond_retention(
    cluster: Cluster,
    operator_factory: Callable[..., OperatorProcess],
    postgres_server: Any,
) -> None:
    database = postgres_server.create_database()
    operator_factory(DATAPIPELINES_HISTORY_DSN=postgres_server.dsn(database)).start()
    await cluster.connection("demo", runner=STUCK, historyLimit=0)
    await cluster.run("demo-a", "demo")
    await cluster.wait_phase("demo-a", "Running")
    await cluster.run("demo-b", "demo")  # Forbid: fails at once, then retention deletes it
    await wait_until(lambda: _gone(cluster, "demo-b"), 30, what="demo-b failed and deleted")
    await cluster.delete_job("demo-a")  # demo-a fails (JobDeleted)

    async def archived() -> list[tuple[Any, ...]] | None:
        rows = postgres_server.query(
            f"SELECT run_name, namespace, connection, phase, success, error, attempts "
            f"FROM {history.TABLE} ORDER BY run_name",
            database=database,
        )
        return rows if len(rows) == 2 else None

    rows = await wait_until(archived, 60, what="two archived runs")
    (a, b) = rows
    assert a[:5] == ("demo-a", cluster.ns, "demo", "Failed", False) and a[5].startswith(
        "JobDeleted"
    )
    assert b[:5] == ("demo-b", cluster.ns, "demo", "Failed", False)
    assert b[5].startswith("ConcurrencyForbidden")

    async def all_deleted() -> bool:
        return not await cluster.runs()

    await wait_until(all_deleted, 30, what="historyLimit 0 deletes finished runs")


async def test_same_named_runs_of_two_namespaces_are_both_archived(postgres_server: Any) -> None:
    """The archive is keyed by namespace and run name; a table of an earlier version (keyed by
    run name alone) is migrated in place, its rows kept."""
    from datapipelines.operator.archive import Archive

    database = postgres_server.create_database()
    postgres_server.query(
        f"CREATE TABLE {history.TABLE} (run_name text PRIMARY KEY, namespace text NOT NULL,"
        " connection text NOT NULL, trigger text, batch text, phase text NOT NULL,"
        " success boolean, started_at timestamptz, finished_at timestamptz,"
        " duration_ms bigint, rows_inserted bigint, records_reported bigint,"
        " attempts integer, error text, result jsonb);"
        f" INSERT INTO {history.TABLE} (run_name, namespace, connection, phase)"
        " VALUES ('old-1', 'team-a', 'old', 'Succeeded')",
        database=database,
    )

    def finished(ns: str) -> dict[str, Any]:
        return {
            "metadata": {"name": "nightly-1", "namespace": ns},
            "spec": {"connectionName": "nightly", "trigger": "schedule"},
            "status": {
                "phase": "Succeeded",
                "startTime": "2026-12-01T00:00:00Z",
                "completionTime": "2026-12-01T00:00:05Z",
                "result": {"success": True, "rowsInserted": 3},
            },
        }

    archive = Archive(postgres_server.dsn(database), timeout=5)
    assert await archive.insert(finished("team-a"))
    assert await archive.insert(finished("team-b"))
    assert await archive.insert(finished("team-b"))  # again: kept once, still True
    rows = postgres_server.query(
        f"SELECT namespace, run_name FROM {history.TABLE} ORDER BY namespace, run_name",
        database=database,
    )
    assert rows == [("team-a", "nightly-1"), ("team-a", "old-1"), ("team-b", "nightly-1")]
