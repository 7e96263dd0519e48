"""sql_database (PostgreSQL → DuckDB) and filesystem (csv, jsonl, parquet) sources."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.integration.runner.runnerkit import (
    duckdb_destination,
    duckdb_query,
    postgres_destination,
)

pytestmark = pytest.mark.postgres


@pytest.fixture
def source_db(postgres_server, runner) -> str:
    """A source database with `orders` (300 rows) and its SQLAlchemy URL as a Secret."""
    name = postgres_server.create_database()
    postgres_server.query(
        "CREATE TABLE orders (id int PRIMARY KEY, customer text, amount numeric(10,2), "
        "updated_at timestamptz NOT NULL);"
        "INSERT INTO orders SELECT i, 'c' || (i % 7), i * 1.5, "
        "timestamptz '2024-01-01' + i * interval '1 minute' FROM generate_series(1, 300) i",
        database=name,
    )
    runner.secret("src-db", "url", postgres_server.dsn(name))
    return name


def sql_spec(db: Path, **source: object) -> dict:
    return {
        "type": "sql_database",
        "schemaName": "shop",
        "source": {
            "sqlDatabase": {"credentialsSecretRef": {"name": "src-db", "key": "url"}, **source}
        },
        "destination": duckdb_destination(db),
    }


def test_sql_table_to_duckdb_incremental(postgres_server, source_db, runner, tmp_path) -> None:
    db = tmp_path / "wh.duckdb"
    spec = sql_spec(db, tables=["orders"], incremental={"cursorColumn": "updated_at"})

    first = runner.run(spec, name="orders")
    assert first.exit_code == 0, first.error
    assert first.result["rowsInserted"] == 300
    assert duckdb_query(db, "SELECT count(*), sum(amount) FROM shop.orders") == [(300, 67725)]

    assert runner.run(spec, name="orders").result["rowsInserted"] == 0  # nothing new

    postgres_server.query(
        "INSERT INTO orders SELECT i, 'new', 1, now() FROM generate_series(301, 320) i",
        database=source_db,
    )
    third = runner.run(spec, name="orders")
    assert third.result["rowsInserted"] == 20
    assert duckdb_query(db, "SELECT count(*), count(DISTINCT id) FROM shop.orders") == [(320, 320)]


def test_sql_query_to_postgres(postgres_server, source_db, runner, warehouse) -> None:
    spec = sql_spec(
        Path("/unused"),
        query="SELECT customer, count(*) AS n, sum(amount) AS total FROM orders GROUP BY 1",
        queryTable="per_customer",
    )
    spec["destination"] = postgres_destination(postgres_server, warehouse)
    outcome = runner.run(spec, name="per-customer")
    assert outcome.exit_code == 0, outcome.error
    assert outcome.result["rowsInserted"] == 7
    rows = postgres_server.query("SELECT sum(n) FROM shop.per_customer", database=warehouse)
    assert rows == [(300,)]


def test_sql_source_wrong_password(postgres_server, runner, tmp_path) -> None:
    runner.secret("src-db", "url", postgres_server.dsn().replace(postgres_server.password, "nope"))
    outcome = runner.run(sql_spec(tmp_path / "x.duckdb", tables=["orders"]))
    assert outcome.exit_code == 1
    assert outcome.error.startswith("bad credentials: source database rejected the login")
    assert "nope" not in outcome.result["report"]


ROWS = [
    {"id": i, "name": f"n{i}", "price": i * 0.5, "when": f"2024-01-0{1 + i % 9}"}
    for i in range(250)
]


def write_files(folder: Path, fmt: str) -> None:
    folder.mkdir(parents=True)
    for part in range(2):
        chunk = ROWS[part * 125 : (part + 1) * 125]
        path = folder / f"part-{part}.{fmt}"
        if fmt == "csv":
            lines = ["id,name,price,when"] + [
                f"{r['id']},{r['name']},{r['price']},{r['when']}" for r in chunk
            ]
            path.write_text("\n".join(lines) + "\n")
        elif fmt == "jsonl":
            path.write_text("".join(json.dumps(r) + "\n" for r in chunk))
        else:
            pq.write_table(pa.Table.from_pylist(chunk), path)


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_filesystem_formats_to_duckdb(fmt, runner, tmp_path) -> None:
    folder = tmp_path / "in"
    write_files(folder, fmt)
    db = tmp_path / "files.duckdb"
    spec = {
        "type": "filesystem",
        "schemaName": "landing",
        "source": {
            "filesystem": {
                "bucketUrl": str(folder),
                "fileGlob": f"*.{fmt}",
                "format": fmt,
                "tableName": "products",
            }
        },
        "destination": duckdb_destination(db),
    }
    first = runner.run(spec, name=f"files-{fmt}")
    assert first.exit_code == 0, first.error
    assert first.result["rowsInserted"] == 250
    assert duckdb_query(db, "SELECT count(*), sum(id), sum(price) FROM landing.products") == [
        (250, sum(range(250)), sum(r["price"] for r in ROWS))
    ]
    # unchanged files: nothing new
    assert runner.run(spec, name=f"files-{fmt}").result["rowsInserted"] == 0


def test_filesystem_csv_to_postgres(postgres_server, warehouse, runner, tmp_path) -> None:
    folder = tmp_path / "in"
    write_files(folder, "csv")
    spec = {
        "type": "filesystem",
        "schemaName": "landing",
        "source": {
            "filesystem": {"bucketUrl": f"file://{folder}", "fileGlob": "*.csv", "format": "csv"}
        },
        "destination": postgres_destination(postgres_server, warehouse),
    }
    outcome = runner.run(spec, name="files-pg")
    assert outcome.exit_code == 0, outcome.error
    assert outcome.result["rowsInserted"] == 250
    assert postgres_server.query("SELECT count(*) FROM landing.files", database=warehouse) == [
        (250,)
    ]
