"""Optional PostgreSQL archive of finished runs (``DATAPIPELINES_HISTORY_DSN``).

The DDL and the row mapper live in :mod:`datapipelines.resources.history`, shared with the API.
Inserts are idempotent (``ON CONFLICT DO NOTHING``): a run is archived when it ends (best effort)
and again, required, right before retention deletes it — so no run is deleted unarchived.
"""

from __future__ import annotations

import logging
from typing import Any

from datapipelines.resources import history

log = logging.getLogger(__name__)


class Archive:
    def __init__(self, dsn: str, timeout: float = 5.0) -> None:
        self.dsn = dsn
        self.timeout = timeout
        self._ready = False

    async def _connect(self) -> Any:
        import psycopg

        return await psycopg.AsyncConnection.connect(
            self.dsn, autocommit=True, connect_timeout=max(1, int(self.timeout))
        )

    async def ensure_table(self) -> None:
        async with await self._connect() as conn:
            await conn.execute(history.DDL)
        self._ready = True

    async def insert(self, run: dict[str, Any]) -> bool:
        """Archive a finished run; True when the row is there (new or already)."""
        row = history.run_to_row(run)
        if row is None:
            return False
        from psycopg.types.json import Jsonb

        row = {**row, "result": Jsonb(row["result"]) if row["result"] is not None else None}
        try:
            if not self._ready:
                await self.ensure_table()
            async with await self._connect() as conn:
                await conn.execute(history.INSERT_SQL, row)
            return True
        except Exception as exc:
            log.warning("could not archive run %s: %s", row["run_name"], exc)
            return False
