"""The connection's destination as a dlt destination, and the file format to load with.

PostgreSQL loads `csv` files with COPY; DuckDB loads `parquet` for sources that yield Arrow
tables (sql_database, csv/parquet files, rest_api pages — flat pages are Arrow tables, see
arrowpages.py) and `jsonl` for jsonl files. Those are the fastest measured paths (`make bench`).
The dataset is the connection's schemaName.

Credentials are given as dicts, never as connection strings: dlt parses strings with
SQLAlchemy, whose import alone takes ~0.15 s of the start-up.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from datapipelines.resources import podcontract as pod
from datapipelines.resources.connection import ConnectionSpec, DestinationType

from . import secrets
from .errors import ConfigError

#: The default file relative to the data dir (in a pod: the warehouse volume's default file).
DUCKDB_DEFAULT_FILE = pod.WAREHOUSE_DEFAULT_FILE.removeprefix(pod.DATA_DIR + "/")


@dataclass(frozen=True)
class DestinationSetup:
    destination: Any  # a dlt destination factory
    loader_file_format: Literal["jsonl", "parquet", "csv"]
    description: str  # for messages: never holds a secret


def duckdb_path(spec: ConnectionSpec, data_dir: str) -> Path:
    """The DuckDB file: the spec's path, else the default file under the data dir (in a pod
    the warehouse volume). schemaName ≠ file stem is a rule of the spec itself."""
    configured = spec.destination.duck.path
    path = Path(configured) if configured else Path(data_dir) / DUCKDB_DEFAULT_FILE
    if not path.is_absolute():
        path = Path.cwd() / path
    return path


def build_destination(spec: ConnectionSpec, data_dir: str, arrow_items: bool) -> DestinationSetup:
    """`arrow_items`: the source yields Arrow tables (all or some of its items)."""
    from dlt.destinations import duckdb, postgres

    dest = spec.destination
    if dest.type is DestinationType.POSTGRES:
        pg = dest.postgres
        assert pg is not None
        credentials = {
            "drivername": "postgresql",
            "database": pg.database,
            "username": pg.username,
            "password": secrets.read(pg.password_secret_ref),
            "host": pg.host,
            "port": pg.port,
            "connect_timeout": pg.connect_timeout_seconds,
            "query": {"sslmode": str(pg.ssl_mode)},
        }
        description = f"postgres {pg.host}:{pg.port}/{pg.database} as {pg.username}"
        return DestinationSetup(postgres(credentials=credentials), "csv", description)
    path = duckdb_path(spec, data_dir)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"cannot create the DuckDB directory {path.parent}: {exc.strerror}"
        ) from None
    if path.exists() and not os.access(path, os.W_OK):
        raise ConfigError(f"the DuckDB file {path} is not writable")
    fmt: Literal["parquet", "jsonl"] = "parquet" if arrow_items else "jsonl"
    return DestinationSetup(duckdb(credentials={"database": str(path)}), fmt, f"duckdb {path}")
