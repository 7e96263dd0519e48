"""A run's options on real DuckDB and PostgreSQL: a full refresh re-loads exactly the source's
rows and says what it replaced; a refresh of one stream leaves the others' rows and cursors; a
refresh that fails leaves the old rows and cursors; `since` loads only the rows since then."""

from __future__ import annotations

import json
from typing import Any

import pytest

from datapipelines.resources.podcontract import ENV_RUN_OPTIONS
from datapipelines.runner.demo_source import timestamp
from tests.integration.runner.runnerkit import Runner, query, rest_resource, rest_spec

pytestmark = pytest.mark.postgres


def options(**fields: Any) -> dict[str, str]:
    return {ENV_RUN_OPTIONS: json.dumps(fields)}


def two_streams(url: str, destination: dict[str, Any]) -> dict[str, Any]:
    items, more = rest_resource(), rest_resource()
    more["name"] = "more_items"
    return rest_spec(url, destination, resources=[items, more], write_disposition="merge")


def count(destination: dict[str, Any], request: Any, table: str = "items") -> int:
    return int(query(destination, request, f"SELECT count(*) FROM demo_data.{table}")[0][0])


def test_a_full_refresh_reloads_exactly_the_source(
    http_source, runner: Runner, destination, request
) -> None:
    spec = rest_spec(http_source.url, destination, write_disposition="append")
    http_source.state.records = 1000
    assert runner.run(spec, name="refresh").exit_code == 0
    http_source.state.records = 1200
    assert runner.run(spec, name="refresh").result["rowsInserted"] == 200  # incremental
    assert count(destination, request) == 1200
    http_source.state.records = 700  # the source lost rows: only a refresh shows it
    done = runner.run(spec, name="refresh", **options(fullRefresh=True))
    assert done.exit_code == 0, done.error
    assert done.result["rowsInserted"] == 700 and count(destination, request) == 700
    report = done.result["report"]
    assert "run options: full refresh" in report and "replaced" in report and "items" in report
    assert "cursors set aside (started again): items" in report
    http_source.state.records = 750  # the cursor after the refresh is the refresh's own
    assert runner.run(spec, name="refresh").result["rowsInserted"] == 50
    assert count(destination, request) == 750


def test_refreshing_one_stream_leaves_the_others_alone(
    http_source, runner: Runner, destination, request
) -> None:
    spec = two_streams(http_source.url, destination)
    http_source.state.records = 500
    assert runner.run(spec, name="streams").exit_code == 0
    assert (count(destination, request), count(destination, request, "more_items")) == (500, 500)
    http_source.state.records = 300
    done = runner.run(spec, name="streams", **options(fullRefresh=True, streams=["items"]))
    assert done.exit_code == 0, done.error
    assert (count(destination, request), count(destination, request, "more_items")) == (300, 500)
    http_source.state.records = 600  # more_items' cursor was not touched: 100 new rows only
    after = runner.run(spec, name="streams")
    assert after.result["progressCounts"]["extract"] == {"items": 300, "more_items": 100}
    unknown = runner.run(spec, name="streams", **options(streams=["nope"]))
    assert unknown.exit_code == 2 and "unknown stream(s) nope" in (unknown.error or "")
    assert "items, more_items" in (unknown.error or "")


def test_a_refresh_that_fails_leaves_the_old_rows_and_cursors(
    http_source, runner: Runner, destination, request
) -> None:
    spec = rest_spec(http_source.url, destination, write_disposition="merge", retries=0)
    http_source.state.records = 1000
    assert runner.run(spec, name="failing").exit_code == 0
    http_source.state.fail_from_page = 4  # the refresh fails half way through the source
    failed = runner.run(spec, name="failing", **options(fullRefresh=True))
    assert failed.exit_code != 0
    assert count(destination, request) == 1000  # the old rows
    http_source.state.fail_from_page = None
    http_source.state.records = 1100
    again = runner.run(spec, name="failing")  # the old cursor: 100 new rows, nothing again
    assert again.exit_code == 0 and again.result["progressCounts"]["extract"] == {"items": 100}
    assert count(destination, request) == 1100


def test_since_loads_only_the_rows_since_then(
    http_source, runner: Runner, destination, request
) -> None:
    spec = rest_spec(http_source.url, destination, write_disposition="merge")
    http_source.state.records = 1000
    backfill = runner.run(spec, name="since", **options(since=timestamp(901)))
    assert backfill.exit_code == 0, backfill.error
    assert backfill.result["progressCounts"]["extract"] == {"items": 100}
    ids = query(destination, request, "SELECT min(id), max(id), count(*) FROM demo_data.items")
    assert tuple(ids[0]) == (901, 1000, 100)
    append = rest_spec(http_source.url, destination, write_disposition="append")
    refused = runner.run(append, name="since-append", **options(since=timestamp(5)))
    assert refused.exit_code == 2 and "append" in (refused.error or "")
