"""The connection's source as a dlt source: rest_api, sql_database or filesystem.

`build_source(spec, name)` returns a `BuiltSource`: the dlt source and the shape of its items
(`ItemShape`), which picks the load file format (destinations.py). rest_api resources get a
step that turns flat pages into Arrow tables (arrowpages.py) and an HTTP session that parses
each page once (restclient.py).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, cast

import dlt
from dlt.common.schema.typing import TWriteDisposition
from dlt.extract import DltResource, DltSource

from datapipelines.resources.connection import (
    ConnectionSpec,
    FileFormat,
    FilesystemSource,
    RestApiSource,
    SourceType,
    SqlDatabaseSource,
    WriteDisposition,
)

from . import restclient, saas, secrets
from .arrowpages import FlatPagesToArrow, dlt_types_to_known
from .errors import ConfigError
from .restconfig import rest_api_config

ARROW_PAGES_ENV = "RUNNER__ARROW_PAGES"


class ItemShape(StrEnum):
    ARROW = "arrow"  # Arrow tables (sql_database, csv/parquet files)
    ROWS = "rows"  # Python rows (jsonl files)
    PAGES = "pages"  # rest_api pages: Arrow tables when flat, rows when nested


@dataclass
class BuiltSource:
    source: DltSource
    shape: ItemShape
    arrow_pages: dict[str, FlatPagesToArrow] = field(default_factory=dict)  # by table

    def learn_destination_types(self, schema: Any) -> None:
        """Column types the destination's tables already have (they win over inference)."""
        if schema is None:
            return
        for table, step in self.arrow_pages.items():
            if table in schema.tables:
                known = dlt_types_to_known(schema.get_table_columns(table))
                step.known.update({**known, **step.known})

    def disable_arrow_pages(self) -> None:
        for step in self.arrow_pages.values():
            step.enabled = False

    def arrow_page_counts(self) -> tuple[int, int]:
        """(pages sent as Arrow tables, pages left as rows)."""
        steps = self.arrow_pages.values()
        return sum(s.pages_as_arrow for s in steps), sum(s.pages_as_rows for s in steps)


def dlt_disposition(write_disposition: WriteDisposition) -> TWriteDisposition:
    return cast("TWriteDisposition", write_disposition.value)


def build_source(spec: ConnectionSpec, name: str) -> BuiltSource:
    if saas.is_saas(spec):
        src, streams = saas.expand(spec)
        built = rest_api(src, spec.write_disposition, name)
        built.source = built.source.with_resources(*streams)
        return built
    if spec.type is SourceType.REST_API:
        assert spec.source.rest_api is not None
        return rest_api(spec.source.rest_api, spec.write_disposition, name)
    if spec.type is SourceType.SQL_DATABASE:
        assert spec.source.sql_database is not None
        source = sql_database(spec.source.sql_database, spec.write_disposition, name)
        return BuiltSource(source, ItemShape.ARROW)
    assert spec.source.filesystem is not None
    fs = spec.source.filesystem
    shape = ItemShape.ROWS if fs.format is FileFormat.JSONL else ItemShape.ARROW
    return BuiltSource(filesystem(fs, spec.write_disposition, name), shape)


# --- rest_api ---------------------------------------------------------------------------------


def dlt_config_problem(exc: Exception) -> str:
    """The most specific line of dlt's (long, nested) config validation error."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    candidates = [ln for ln in lines if ln.startswith("For `") and "Path `" in ln]
    if not candidates:
        return lines[0] if lines else type(exc).__name__
    best = max(candidates, key=lambda ln: ln.split("`: ", 1)[-1].split("`")[1].count("/"))
    return best.split(": ", 1)[-1]


def arrow_pages_enabled() -> bool:
    """Flat pages as Arrow tables (arrowpages.py) unless `RUNNER__ARROW_PAGES=false`."""
    return os.environ.get(ARROW_PAGES_ENV, "true").strip().lower() not in ("0", "false", "no")


def declared_types(resource: DltResource, normalize: Callable[[str], str]) -> dict[str, str]:
    """Data types the resource's own column hints declare (they win over inference)."""
    columns = resource.columns
    if not isinstance(columns, dict):
        return {}
    return {
        normalize(name): str(column["data_type"])
        for name, column in columns.items()
        if isinstance(column, dict) and column.get("data_type")
    }


def required_columns(resource: DltResource) -> frozenset[str]:
    """Columns dlt makes NOT NULL for the resource (its primary key, declared hints)."""
    try:
        columns = resource.compute_table_schema().get("columns", {})
    except Exception:  # hints computed per item: nothing to know up front
        return frozenset()
    return frozenset(name for name, c in columns.items() if c.get("nullable") is False)


def parent_resources(config: dict[str, Any]) -> set[str]:
    """Names of the resources other resources read items from (``resolve`` params or
    ``{resources.<name>.<field>}`` placeholders)."""
    found: set[str] = set()
    for resource in config.get("resources", []):
        if not isinstance(resource, dict):
            continue
        endpoint = resource.get("endpoint")
        if not isinstance(endpoint, dict):
            continue
        for param in (endpoint.get("params") or {}).values():
            if isinstance(param, dict) and param.get("type") == "resolve":
                found.add(str(param.get("resource")))
        found.update(re.findall(r"\{resources\.([A-Za-z0-9_]+)\.", str(endpoint.get("path", ""))))
    return found


def rest_api(src: RestApiSource, write_disposition: WriteDisposition, name: str) -> BuiltSource:
    from dlt.sources.rest_api import rest_api_source

    config = rest_api_config(src, write_disposition)
    config["client"]["session"] = restclient.session()
    restclient.cache_jsonpath_compilation()
    try:
        source = rest_api_source(cast(Any, config), name=name)
    except ConfigError:
        raise
    except Exception as exc:  # dlt validates the declarative config here
        problem = dlt_config_problem(exc)
        raise ConfigError(f"invalid restApi config: {secrets.redact(problem)}") from None
    steps: dict[str, FlatPagesToArrow] = {}
    if arrow_pages_enabled():
        normalize = source.schema.naming.normalize_identifier
        parents = parent_resources(config)
        for resource in source.resources.values():
            table = resource.table_name
            if not isinstance(table, str):
                continue  # a table name per item: pages may span tables
            if resource.name in parents:
                continue  # its children read its items as dicts (resolve params)
            step = FlatPagesToArrow(
                declared_types(resource, normalize),
                normalize,
                frozenset(normalize(c) for c in required_columns(resource)),
            )
            resource.add_step(step)
            steps[table] = step
    return BuiltSource(source, ItemShape.PAGES, steps)


# --- sql_database -----------------------------------------------------------------------------


def sqlalchemy_url(url: str) -> str:
    """SQLAlchemy 2.1 maps `postgresql://` to psycopg 3; the runner ships psycopg2."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix) :]
    return url


def sql_database(
    src: SqlDatabaseSource, write_disposition: WriteDisposition, name: str
) -> DltSource:
    from dlt.sources.sql_database import sql_database as dlt_sql_database

    url = sqlalchemy_url(secrets.read(src.credentials_secret_ref))
    secrets.remember(url)
    resources: list[DltResource] = []
    if src.tables:
        tables_source = dlt_sql_database(
            credentials=url,
            table_names=list(src.tables),
            backend="pyarrow",
            chunk_size=src.chunk_size,
            defer_table_reflect=True,
        )
        for resource in tables_source.resources.values():
            hints: dict[str, Any] = {"write_disposition": str(write_disposition)}
            if src.incremental is not None:
                hints["incremental"] = dlt.sources.incremental(
                    src.incremental.cursor_column, initial_value=src.incremental.initial_value
                )
            resource.apply_hints(**hints)
            resources.append(resource)
    if src.query:
        resources.append(query_resource(url, src, write_disposition))

    @dlt.source(name=name)
    def sql_source() -> list[DltResource]:
        return resources

    return sql_source()


def query_resource(
    url: str, src: SqlDatabaseSource, write_disposition: WriteDisposition
) -> DltResource:
    """A SELECT loaded as table `queryTable`; with `incremental`, only rows whose cursor is at
    or past the last value (dlt drops the duplicates at the boundary)."""
    import sqlalchemy as sa

    assert src.query is not None
    query = src.query.strip().rstrip(";")
    chunk = src.chunk_size

    def rows(last_value: Any) -> Iterator[list[dict[str, Any]]]:
        engine = sa.create_engine(url)
        sql, params = query, {}
        if last_value is not None and src.incremental is not None:
            column = src.incremental.cursor_column
            sql = f'SELECT * FROM ({query}) AS q WHERE q."{column}" >= :last_value'
            params = {"last_value": last_value}
        try:
            with engine.connect() as conn:
                result = conn.execution_options(stream_results=True, yield_per=chunk).execute(
                    sa.text(sql), params
                )
                for part in result.partitions(chunk):
                    yield [dict(row._mapping) for row in part]
        finally:
            engine.dispose()

    if src.incremental is None:

        @dlt.resource(name=src.query_table, write_disposition=dlt_disposition(write_disposition))
        def query_rows() -> Iterator[list[dict[str, Any]]]:
            yield from rows(None)

        return query_rows()

    incremental = dlt.sources.incremental(
        src.incremental.cursor_column, initial_value=src.incremental.initial_value
    )

    @dlt.resource(name=src.query_table, write_disposition=dlt_disposition(write_disposition))
    def query_rows_incremental(
        cursor: dlt.sources.incremental[Any] = incremental,
    ) -> Iterator[list[dict[str, Any]]]:
        yield from rows(cursor.last_value)

    return query_rows_incremental()


# --- filesystem -------------------------------------------------------------------------------


def bucket_url(url: str) -> str:
    """A plain absolute path is a local directory."""
    return f"file://{url}" if url.startswith("/") else url


@dlt.transformer(standalone=True)
def read_csv_arrow(items: Any, chunk_rows: int = 100_000) -> Iterator[Any]:
    """CSV files as Arrow tables (pyarrow's reader: typed columns, no pandas)."""
    import pyarrow.csv as pacsv

    for file_item in items:
        with file_item.open() as f:
            table = pacsv.read_csv(f)
        yield from (table.slice(i, chunk_rows) for i in range(0, table.num_rows, chunk_rows))


@dlt.transformer(standalone=True)
def read_parquet_arrow(items: Any, chunk_rows: int = 100_000) -> Iterator[Any]:
    """Parquet files as Arrow record batches (no conversion to Python rows)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    for file_item in items:
        with file_item.open() as f:
            for batch in pq.ParquetFile(f).iter_batches(batch_size=chunk_rows):
                yield pa.Table.from_batches([batch])


def filesystem(src: FilesystemSource, write_disposition: WriteDisposition, name: str) -> DltSource:
    from dlt.sources.filesystem import filesystem as dlt_filesystem
    from dlt.sources.filesystem import read_jsonl

    files = dlt_filesystem(bucket_url=bucket_url(src.bucket_url), file_glob=src.file_glob)
    if write_disposition is not WriteDisposition.REPLACE:
        # a rerun over unchanged files loads nothing: only new or modified files are read
        files.apply_hints(incremental=dlt.sources.incremental("modification_date"))
    reader = {
        FileFormat.CSV: read_csv_arrow(),
        FileFormat.JSONL: read_jsonl(),
        FileFormat.PARQUET: read_parquet_arrow(),
    }
    resource = (files | reader[src.format]).with_name(src.table_name)
    resource.apply_hints(write_disposition=dlt_disposition(write_disposition))

    @dlt.source(name=name)
    def files_source() -> DltResource:
        return resource

    return files_source()
