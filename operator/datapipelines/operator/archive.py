"""Optional PostgreSQL archive of finished runs (``DATAPIPELINES_HISTORY_DSN``).

The DDL and the row mapper live in :mod:`datapipelines.resources.history`, shared with the API.
Inserts are idempotent (``ON CONFLICT DO NOTHING``): a run is archived when it ends (best effort)
and again, required, right before retention deletes it — so no run is deleted unarchived.

While the archive is down, inserts fail fast: after a failure none is tried again for a
back-off (1 s, doubling up to 30 s), so an outage costs each reconcile no connection attempt
(nor a connect timeout) and the log one line per try, not one per run and reconcile.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from datapipelines.resources import history

log = logging.getLogger(__name__)

BACKOFF_FIRST_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 30.0


def next_backoff(previous: float | None) -> float:
    """The wait after a failed try: the first, then doubling up to the maximum."""
    if previous is None:
        return BACKOFF_FIRST_SECONDS
    return min(BACKOFF_MAX_SECONDS, previous * 2)


def _clock() -> float:
    return time.monotonic()


class Archive:
    def __init__(self, dsn: str, timeout: float = 5.0) -> None:
        self.dsn = dsn
        self.timeout = timeout
        self._ready = False
        self._backoff: float | None = None  # set while the archive is failing
        self._retry_at = 0.0

    @property
    def available(self) -> bool:
        """False while backing off after a failure (no try until then)."""
        return self._backoff is None or _clock() >= self._retry_at

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
        if not self.available:
            log.debug("archive down: run %s not archived now", row["run_name"])
            return False
        from psycopg.types.json import Jsonb

        row = {**row, "result": Jsonb(row["result"]) if row["result"] is not None else None}
        try:
            if not self._ready:
                await self.ensure_table()
            async with await self._connect() as conn:
                await conn.execute(history.INSERT_SQL, row)
        except Exception as exc:
            self._backoff = next_backoff(self._backoff)
            self._retry_at = _clock() + self._backoff
            log.warning(
                "could not archive run %s (next try in %.0f s): %s",
                row["run_name"],
                self._backoff,
                exc,
            )
            return False
        if self._backoff is not None:
            log.info("history archive reachable again")
        self._backoff = None
        return True
