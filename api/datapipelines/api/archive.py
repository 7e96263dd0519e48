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

CONNECT_TIMEOUT_S = 5


class HistoryArchive(Protocol):
    async def recent(self, namespaces: list[str], limit: int) -> list[HistoryEntryOut]:
        """Newest first, of ``namespaces`` ([] = all)."""
        ...

    async def last_run(self, namespace: str, connection: str) -> dict[str, Any] | None:
        """The newest archived row of one connection."""
        ...


class PostgresArchive:
    """Short-lived connections per request: history reads are rare and cheap."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn

    async def _fetch(self, query: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        # imported on first use: an API without an archive does not carry psycopg (~10 MB)
        import psycopg
        from psycopg import errors as pg_errors
        from psycopg.rows import dict_row

        try:
            async with await psycopg.AsyncConnection.connect(
                self._dsn, connect_timeout=CONNECT_TIMEOUT_S, row_factory=dict_row
            ) as conn:
                cur = await conn.execute(query, params)
                return list(await cur.fetchall())
        except pg_errors.UndefinedTable:
            log.info("history archive table does not exist yet", extra={"table": TABLE})
            return []
        except psycopg.Error as exc:
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
