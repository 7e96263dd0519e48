"""The connection's destination as a dlt destination, and the file format to load with.

PostgreSQL loads `csv` files with COPY; DuckDB loads `jsonl` (Python rows) or `parquet` (Arrow
sources). Both are the fastest measured paths (RUNNER-NOTES). The dataset is the connection's
schemaName.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from . import secrets
from .config import ConnectionSpec
from .errors import ConfigError

DUCKDB_DEFAULT_FILE = "duckdb/datapipelines.duckdb"


@dataclass(frozen=True)
class DestinationSetup:
    destination: Any  # a dlt destination factory
    loader_file_format: Literal["jsonl", "parquet", "csv"]
    description: str  # for messages: never holds a secret


def duckdb_path(spec: ConnectionSpec, data_dir: str) -> Path:
    configured = spec.destination.duckdb.path if spec.destination.duckdb else None
    path = Path(configured) if configured else Path(data_dir) / DUCKDB_DEFAULT_FILE
    if not path.is_absolute():
        path = Path.cwd() / path
    if path.stem == spec.schema_name:
        # DuckDB cannot tell the catalog (file name) from a schema of the same name
        raise ConfigError(
            f"schemaName {spec.schema_name!r} must differ from the DuckDB file name {path.name!r}"
        )
    return path


def build_destination(spec: ConnectionSpec, data_dir: str, arrow_source: bool) -> DestinationSetup:
    from dlt.destinations import duckdb, postgres

    dest = spec.destination
    if dest.type == "postgres":
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
            "query": {"sslmode": pg.ssl_mode},
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
    fmt: Literal["parquet", "jsonl"] = "parquet" if arrow_source else "jsonl"
    return DestinationSetup(duckdb(credentials=str(path)), fmt, f"duckdb {path}")
