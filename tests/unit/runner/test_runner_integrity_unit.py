"""Pure parts of the integrity and reporting machinery: schema diffs, retry policy, rollback
order, the default DuckDB file, the HTTP session's parse-once responses."""

from __future__ import annotations

from pathlib import Path

import requests

from datapipelines.resources import podcontract as pod
from datapipelines.resources.connection import ConnectionSpec
from datapipelines.runner.destinations import duckdb_path
from datapipelines.runner.recovery import nested_top_down
from datapipelines.runner.restclient import cache_jsonpath_compilation, parse_json_once
from datapipelines.runner.retries import DELAYS_ENV, RetryPolicy
from datapipelines.runner.schemachanges import describe, diff


def test_schema_diff_names_tables_columns_and_types() -> None:
    before = {"items": {"id": "bigint", "price": "double"}}
    after = {
        "items": {"id": "bigint", "price": "text", "color": "text"},
        "items__tags": {"tag": "text"},
    }
    changes = [c.model_dump(by_alias=True, exclude_none=True) for c in diff(before, after)]
    assert changes == [
        {"kind": "ColumnAdded", "table": "items", "column": "color", "dataType": "text"},
        {
            "kind": "TypeChanged",
            "table": "items",
            "column": "price",
            "dataType": "text",
            "previousType": "double",
        },
        {"kind": "TableAdded", "table": "items__tags"},
    ]
    assert diff(after, after) == []
    lines = [describe(c, after) for c in diff(before, after)]
    assert lines == [
        "column items.color added (text)",
        "column items.price changed type double -> text",
        "table items__tags added (tag text)",
    ]


def test_retry_policy_from_the_environment() -> None:
    assert RetryPolicy.from_env({}).delays == (2.0, 5.0, 10.0)
    policy = RetryPolicy.from_env({DELAYS_ENV: "0.5, 1"})
    assert policy.attempts == 3
    assert [policy.delay_before(n) for n in (2, 3, 4)] == [0.5, 1.0, None]
    assert RetryPolicy.from_env({DELAYS_ENV: ""}).attempts == 1
    assert RetryPolicy.from_env({DELAYS_ENV: "soon"}).delays == (2.0, 5.0, 10.0)


def test_rollback_deletes_nested_rows_top_down() -> None:
    parents = {"items__tags": "items", "items__tags__x": "items__tags", "gone": "items"}
    existing = {"items", "items__tags", "items__tags__x"}
    assert nested_top_down(parents, existing) == [
        ("items__tags", "items"),
        ("items__tags__x", "items__tags"),
    ]


def spec(destination: dict | None = None) -> ConnectionSpec:
    data: dict = {
        "type": "rest_api",
        "schemaName": "demo",
        "source": {"restApi": {"baseUrl": "http://h/", "resources": ["items"]}},
    }
    if destination is not None:
        data["destination"] = destination
    return ConnectionSpec.model_validate(data)


def test_the_default_duckdb_file_is_the_warehouse_volumes() -> None:
    assert str(duckdb_path(spec(), pod.DATA_DIR)) == pod.WAREHOUSE_DEFAULT_FILE
    assert duckdb_path(spec(), "/tmp/dp") == Path("/tmp/dp/warehouse/warehouse.duckdb")
    explicit = spec({"type": "duckdb", "duckdb": {"path": "/data/shop.duckdb"}})
    assert duckdb_path(explicit, pod.DATA_DIR) == Path("/data/shop.duckdb")


def response(body: bytes) -> requests.Response:
    r = requests.Response()
    r._content = body
    r.status_code = 200
    r.encoding = "utf-8"
    return r


def test_a_response_body_is_parsed_once() -> None:
    r = parse_json_once(response(b'{"items": [{"id": 1}], "total_pages": 1}'))
    first = r.json()
    assert first == {"items": [{"id": 1}], "total_pages": 1}
    assert r.json() is first
    # what orjson refuses, requests' decoder still reads
    huge = parse_json_once(response(b'{"n": 123456789012345678901234567890}'))
    assert huge.json() == {"n": 123456789012345678901234567890}


def test_jsonpath_compilation_is_cached() -> None:
    from dlt.common import jsonpath

    cache_jsonpath_compilation()
    cache_jsonpath_compilation()  # idempotent
    assert jsonpath.compile_path("items") is jsonpath.compile_path("items")
    assert jsonpath.find_values("items", {"items": [1, 2]}) == [[1, 2]]


def test_a_body_that_is_not_json_raises_requests_own_error() -> None:
    import pytest

    page = parse_json_once(response(b"<html>oops</html>"))
    with pytest.raises(requests.exceptions.JSONDecodeError):
        page.json()
