"""One writer per PostgreSQL schema, across operator shards and installations.

The operator serializes connections that share a destination within its own process (its
destination mutex); two shards, or two installations, do not see each other's runs. A
PostgreSQL destination is serialized where it lives: the runner holds a session-level
advisory lock named after the schema for the whole sync, and waits for it (logging who it
waits for) when another runner holds it. The lock ends with the session: a killed pod
releases it. DuckDB files need nothing more: a warehouse volume belongs to one namespace (one
shard), and DuckDB itself refuses a second writing process.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from typing import Any

from datapipelines.resources.connection import ConnectionSpec, DestinationType

from . import secrets

log = logging.getLogger(__name__)

#: How often a waiting runner tries the lock again.
POLL_SECONDS = 2.0
LOCK_SQL = "SELECT pg_try_advisory_lock(hashtextextended(%s, 0))"


def lock_name(database: str, schema: str) -> str:
    return f"datapipelines:{database}:{schema}"


@contextlib.contextmanager
def destination_lock(spec: ConnectionSpec, who: str) -> Iterator[None]:
    """Held for the sync: the schema's advisory lock on a PostgreSQL destination (nothing
    for DuckDB). ``who`` names this run in the log of a runner that waits."""
    pg = spec.destination.postgres
    if spec.destination.type is not DestinationType.POSTGRES or pg is None:
        yield
        return
    import psycopg2

    conn: Any = psycopg2.connect(
        host=pg.host,
        port=pg.port,
        dbname=pg.database,
        user=pg.username,
        password=secrets.read(pg.password_secret_ref),
        connect_timeout=pg.connect_timeout_seconds,
        sslmode=str(pg.ssl_mode),
        application_name=f"datapipelines-lock {who}"[:63],
    )
    try:
        conn.autocommit = True
        name = lock_name(pg.database, spec.schema_name)
        waited = False
        while True:
            with conn.cursor() as cur:
                cur.execute(LOCK_SQL, (name,))
                (held,) = cur.fetchone()
            if held:
                break
            if not waited:
                log.info(
                    "waiting for another run writing schema %s of %s (one writer at a time)",
                    spec.schema_name,
                    pg.database,
                )
                waited = True
            time.sleep(POLL_SECONDS)
        yield
    finally:
        with contextlib.suppress(Exception):
            conn.close()  # the session's advisory lock ends with it
