"""Read side of the optional PostgreSQL run archive (`DATAPIPELINES_HISTORY_DSN`).

The operator writes one row per finished PipelineRun into `datapipelines_run_history`
(DDL in `datapipelines.resources.history`); the API only reads it, so history outlives the
per-connection retention of PipelineRun objects.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from datapipelines.api.errors import ArchiveUnavailable
from datapipelines.api.mapping import history_entry_of_row
from datapipelines.api.models import HistoryEntryOut
from datapipelines.resources.history import COLUMNS as _ALL_COLUMNS
from datapipelines.resources.history import TABLE

log = logging.getLogger(__name__)

# Everything but the `result` jsonb (reports can be large; no endpoint needs them here).
COLUMNS = ", ".join(c for c in _ALL_COLUMNS if c != "result")
_ORDER = "ORDER BY finished_at DESC NULLS LAST, started_at DESC NULLS LAST, run_name DESC"
SELECT_RECENT_IN_NAMESPACES_SQL = (
    f"SELECT {COLUMNS} FROM {TABLE} WHERE namespace = ANY(%(namespaces)s) {_ORDER} LIMIT %(limit)s"
)
SELECT_RECENT_SQL = f"SELECT {COLUMNS} FROM {TABLE} {_ORDER} LIMIT %(limit)s"
SELECT_LAST_OF_CONNECTION_SQL = (
    f"SELECT {COLUMNS} FROM {TABLE} WHERE namespace = %(namespace)s AND "
    f"connection = %(connection)s {_ORDER} LIMIT 1"
)

SELECT_KEPT_LOG_SQL = (
    f"SELECT namespace, connection, phase, result->'log' AS log FROM {TABLE} "
    "WHERE run_name = %(run)s AND (%(all)s OR namespace = ANY(%(namespaces)s)) "
    "ORDER BY finished_at DESC NULLS LAST LIMIT 1"
)

CONNECT_TIMEOUT_S = 5


class HistoryArchive(Protocol):
    async def recent(self, namespaces: list[str], limit: int) -> list[HistoryEntryOut]:
        """Newest first, of ``namespaces`` ([] = all)."""
        ...

    async def last_run(self, namespace: str, connection: str) -> dict[str, Any] | None:
        """The newest archived row of one connection."""
        ...

    async def archived_log(self, namespaces: list[str], run_id: str) -> dict[str, Any] | None:
        """{namespace, connection, phase, log} of an archived run of ``namespaces`` ([] =
        all), `log` the runner's kept log (None when it kept none); None when not archived."""
        ...


#: Connections the API holds to the archive at most: /history requests beyond it wait for
#: one (up to POOL_TIMEOUT_S), they never open more.
POOL_SIZE = 4
POOL_TIMEOUT_S = 10.0


class PostgresArchive:
    """Reads through a small bounded pool (psycopg_pool), opened on first use and closed with
    the API: a burst of /history requests cannot open a connection each."""

    def __init__(
        self, dsn: str, *, max_size: int = POOL_SIZE, timeout: float = POOL_TIMEOUT_S
    ) -> None:
        self._dsn = dsn
        self._max_size = max_size
        self._timeout = timeout
        self._pool: Any = None

    async def _open(self) -> Any:
        if self._pool is None:
            # imported on first use: an API without an archive does not carry psycopg (~10 MB)
            from psycopg.rows import dict_row
            from psycopg_pool import AsyncConnectionPool

            pool = AsyncConnectionPool(
                self._dsn,
                min_size=0,
                max_size=self._max_size,
                timeout=self._timeout,
                max_idle=300,
                kwargs={"connect_timeout": CONNECT_TIMEOUT_S, "row_factory": dict_row},
                open=False,
                name="history-archive",
            )
            await pool.open(wait=False)
            self._pool = pool
        return self._pool

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    @property
    def pool_size(self) -> int:
        """Connections the pool holds now (0 before the first read)."""
        return 0 if self._pool is None else int(self._pool.get_stats().get("pool_size", 0))

    async def _fetch(self, query: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        import psycopg
        from psycopg import errors as pg_errors
        from psycopg_pool import PoolTimeout

        try:
            pool = await self._open()
            async with pool.connection() as conn:
                cur = await conn.execute(query, params)
                return list(await cur.fetchall())
        except pg_errors.UndefinedTable:
            log.info("history archive table does not exist yet", extra={"table": TABLE})
            return []
        except (psycopg.Error, PoolTimeout) as exc:
            raise ArchiveUnavailable(
                f"the run history archive (PostgreSQL) cannot be read: {type(exc).__name__}"
            ) from exc

    async def recent(self, namespaces: list[str], limit: int) -> list[HistoryEntryOut]:
        if namespaces:
            rows = await self._fetch(
                SELECT_RECENT_IN_NAMESPACES_SQL, {"namespaces": namespaces, "limit": limit}
            )
        else:
            rows = await self._fetch(SELECT_RECENT_SQL, {"limit": limit})
        return [history_entry_of_row(row) for row in rows]

    async def last_run(self, namespace: str, connection: str) -> dict[str, Any] | None:
        rows = await self._fetch(
            SELECT_LAST_OF_CONNECTION_SQL, {"namespace": namespace, "connection": connection}
        )
        return rows[0] if rows else None

    async def archived_log(self, namespaces: list[str], run_id: str) -> dict[str, Any] | None:
        rows = await self._fetch(
            SELECT_KEPT_LOG_SQL,
            {"run": run_id, "all": not namespaces, "namespaces": namespaces},
        )
        return rows[0] if rows else None
