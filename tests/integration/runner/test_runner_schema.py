"""Schema contracts (`spec.schemaContract`, dlt's) and the schema changes each run reports, on
real DuckDB and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.runner.runnerkit import Runner, query, rest_resource, rest_spec

pytestmark = pytest.mark.postgres


def columns(destination: dict[str, Any], request: Any, table: str = "items") -> list[str]:
    sql = (
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'demo_data' "
        f"AND table_name = '{table}' ORDER BY column_name"
    )
    return [row[0] for row in query(destination, request, sql)]


def spec(url: str, destination: dict[str, Any], contract: dict | None = None, **kw: Any) -> dict:
    extra = {"schemaContract": contract} if contract else {}
    resources = kw.pop("resources", None) or [rest_resource(incremental=False)]
    return rest_spec(url, destination, resources=resources, **extra, **kw)


def test_changes_are_reported_run_by_run(http_source, runner: Runner, destination) -> None:
    http_source.state.records = 300
    first = runner.run(spec(http_source.url, destination), name="changes")
    assert first.exit_code == 0, first.error
    assert first.result["schemaChanges"] == [
        {"kind": "TableAdded", "table": "items", "column": None, "dataType": None,
         "previousType": None}
    ]  # fmt: skip
    assert "table items added (id bigint, updated_at timestamp," in first.result["report"]

    http_source.state.extra_fields = {"color": "red"}
    second = runner.run(spec(http_source.url, destination), name="changes")
    assert second.result["schemaChanges"] == [
        {"kind": "ColumnAdded", "table": "items", "column": "color", "dataType": "text",
         "previousType": None}
    ]  # fmt: skip
    assert "column items.color added (text)" in second.result["report"]

    third = runner.run(spec(http_source.url, destination), name="changes")
    assert third.result["schemaChanges"] == []
    assert "schema changes: none" in third.result["report"]

    # a value of another type: dlt keeps the column and adds a variant column
    http_source.state.extra_fields = {"price": "cheap"}
    fourth = runner.run(spec(http_source.url, destination), name="changes")
    assert fourth.exit_code == 0, fourth.error
    assert [(c["kind"], c["column"], c["dataType"]) for c in fourth.result["schemaChanges"]] == [
        ("ColumnAdded", "price__v_text", "text")
    ]


def test_frozen_columns_fail_the_run_naming_table_and_column(
    http_source, runner: Runner, destination, request
) -> None:
    assert runner.run(spec(http_source.url, destination), name="frozen").exit_code == 0

    http_source.state.extra_fields = {"color": "red"}
    frozen = runner.run_cli(spec(http_source.url, destination, {"columns": "freeze"}), "frozen")

    assert frozen.exit_code == 3, frozen.output
    assert frozen.result["error"] == (
        "contract violation: table items column color: new columns are not allowed "
        "(schemaContract.columns: freeze)"
    )
    assert frozen.result["rowsInserted"] == 0
    assert "color" not in columns(destination, request)
    assert query(destination, request, "SELECT count(*) FROM demo_data.items") == [(1000,)]


def test_frozen_tables_refuse_a_new_table(http_source, runner: Runner, destination) -> None:
    assert runner.run(spec(http_source.url, destination), name="tables").exit_code == 0
    others = {**rest_resource(incremental=False), "name": "others"}
    resources = [rest_resource(incremental=False), others]
    frozen = runner.run(
        spec(http_source.url, destination, {"tables": "freeze"}, resources=resources),
        name="tables",
    )
    assert frozen.exit_code == 3
    assert frozen.error == (
        "contract violation: table others: new tables are not allowed "
        "(schemaContract.tables: freeze)"
    )


def test_frozen_data_type_names_the_column(http_source, runner: Runner, destination) -> None:
    assert runner.run(spec(http_source.url, destination), name="types").exit_code == 0
    http_source.state.extra_fields = {"price": "cheap"}
    frozen = runner.run(spec(http_source.url, destination, {"dataType": "freeze"}), name="types")
    assert frozen.exit_code == 3
    assert frozen.error == (
        "contract violation: table items column price: a text value where the column is double "
        "is not allowed (schemaContract.dataType: freeze)"
    )


def test_discarded_values_and_rows(http_source, runner: Runner, destination, request) -> None:
    http_source.state.records = 300
    assert runner.run(spec(http_source.url, destination), name="discard").exit_code == 0
    http_source.state.extra_fields = {"color": "red"}

    values = runner.run(
        spec(http_source.url, destination, {"columns": "discard_value"}), name="discard"
    )
    assert values.exit_code == 0, values.error
    assert values.result["rowsInserted"] == 300  # the rows, without the new column
    assert values.result["schemaChanges"] == []
    assert "color" not in columns(destination, request)

    rows = runner.run(
        spec(http_source.url, destination, {"columns": "discard_row"}), name="discard"
    )
    assert rows.exit_code == 0, rows.error
    assert rows.result["rowsInserted"] == 0  # every row had the new column
    assert query(destination, request, "SELECT count(*) FROM demo_data.items") == [(600,)]


def test_the_loaded_schema_is_what_the_destination_has(
    http_source, runner: Runner, destination, request, reported: list[dict[str, Any]]
) -> None:
    """status.runnerResult.loadedSchema (GET /connections/{name}/schema answers from it): the
    tables and columns information_schema lists, with the primary key and the child table."""
    http_source.state.records = 120
    http_source.state.nested = True
    done = runner.run(spec(http_source.url, destination), name="loaded-schema")
    assert done.exit_code == 0, done.error
    assert "loadedSchema" not in done.result, "never in the 4 KiB termination message"
    schema = reported[-1]["loadedSchema"]
    tables = {t["name"]: t for t in schema["tables"]}
    assert set(tables) == {"items", "items__tags"}
    assert tables["items__tags"]["parent"] == "items"
    rows = query(
        destination,
        request,
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = 'demo_data' AND table_name NOT LIKE '\\_dlt%' ESCAPE '\\' "
        "AND table_name <> '_datapipelines_loads'",  # the runner's journal, not data
    )
    actual: dict[str, set[str]] = {}
    for table, column in rows:
        actual.setdefault(table, set()).add(column)
    assert {name: {c["name"] for c in t["columns"]} for name, t in tables.items()} == actual
    id_column = next(c for c in tables["items"]["columns"] if c["name"] == "id")
    assert id_column["primaryKey"] is True and id_column["dataType"] == "bigint"
