"""rest_api → PostgreSQL / DuckDB through the real runner, checked in the destination."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.runner.runnerkit import (
    duckdb_destination,
    duckdb_query,
    postgres_destination,
    rest_resource,
    rest_spec,
)

pytestmark = pytest.mark.postgres


def test_rest_to_duckdb_counts_rows_in_destination(http_source, runner, tmp_path: Path) -> None:
    db = tmp_path / "out" / "warehouse.duckdb"
    outcome = runner.run(rest_spec(http_source.url, duckdb_destination(db)), name="demo-items")

    assert outcome.exit_code == 0, outcome.error
    result = outcome.result
    assert result["success"] is True
    assert result["rowsInserted"] == 1000
    assert result["recordsReported"] == 1000
    assert result["progressCounts"]["extract"] == {"items": 1000}
    assert result["progressCounts"]["normalize"] == {"items": 1000}
    assert result["progressCounts"]["load"] == {"items": 1000}
    assert result["loadId"]
    assert result["error"] is None
    assert "items" in result["report"] and result["loadId"] in result["report"]
    rows = duckdb_query(db, "SELECT count(*), count(DISTINCT id), max(id) FROM demo_data.items")
    assert rows == [(1000, 1000, 1000)]
    # ten source fields (+ dlt's two)
    columns = duckdb_query(
        db,
        "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'demo_data' "
        "AND table_name = 'items'",
    )
    assert columns[0][0] == 12


def test_rest_to_postgres_with_bearer_token(
    http_source, runner, postgres_server, warehouse, pg_count
) -> None:
    http_source.state.token = "s3cret-token-value"
    runner.secret("demo-source", "token", "s3cret-token-value")
    spec = rest_spec(
        http_source.url,
        postgres_destination(postgres_server, warehouse),
        auth={"type": "bearer", "tokenSecretRef": {"name": "demo-source", "key": "token"}},
    )
    outcome = runner.run(spec, name="demo-items")

    assert outcome.exit_code == 0, outcome.error
    assert outcome.result["rowsInserted"] == 1000
    assert pg_count() == (1000, 1000)
    # the csv loader's cell-count bug (dlt#4461) does not leak into the counts
    assert outcome.result["progressCounts"]["normalize"] == {"items": 1000}
    assert "s3cret-token-value" not in outcome.result["report"]
    assert postgres_server.password not in outcome.result["report"]


def test_incremental_rerun_loads_nothing_new(
    http_source, runner, postgres_server, warehouse, pg_count
) -> None:
    spec = rest_spec(http_source.url, postgres_destination(postgres_server, warehouse))
    first = runner.run(spec, name="inc")
    assert first.result["rowsInserted"] == 1000

    # a new pod (fresh data dir): the cursor comes back from the destination
    second = runner.run(spec, name="inc")
    assert second.exit_code == 0, second.error
    assert second.result["rowsInserted"] == 0
    assert pg_count() == (1000, 1000)
    # the cursor was sent: the second run asked only for records since the last one
    assert any("updated_since=2024-01-01T00%3A16%3A40Z" in r for r in http_source.item_requests())

    http_source.state.records = 1250
    third = runner.run(spec, name="inc")
    assert third.result["rowsInserted"] == 250
    assert pg_count() == (1250, 1250)


def test_merge_disposition_upserts(http_source, runner, tmp_path: Path) -> None:
    db = tmp_path / "merge.duckdb"
    spec = rest_spec(
        http_source.url,
        duckdb_destination(db),
        write_disposition="merge",
        resources=[rest_resource(incremental=False)],
    )
    assert runner.run(spec, name="merge").result["rowsInserted"] == 1000
    http_source.state.records = 1100
    again = runner.run(spec, name="merge")
    assert again.exit_code == 0, again.error
    # every record came again; the merge keeps one row per id and this load wrote 1100
    assert again.result["rowsInserted"] == 1100
    assert duckdb_query(db, "SELECT count(*), count(DISTINCT id) FROM demo_data.items") == [
        (1100, 1100)
    ]


def test_http_500_mid_sync_loses_nothing_committed(
    http_source, runner, postgres_server, warehouse, pg_count
) -> None:
    spec = rest_spec(http_source.url, postgres_destination(postgres_server, warehouse))
    assert runner.run(spec, name="flaky").result["rowsInserted"] == 1000

    http_source.state.records = 2500
    http_source.state.fail_from_page = 8
    failed = runner.run(spec, name="flaky")

    assert failed.exit_code == 1
    assert failed.result["success"] is False
    assert failed.error.startswith("source HTTP 500: ")
    assert "page=8" in failed.error and http_source.url in failed.error
    assert failed.result["rowsInserted"] == 0
    assert pg_count() == (1000, 1000)  # what the first run committed is still there

    http_source.state.fail_from_page = None
    healed = runner.run(spec, name="flaky")
    assert healed.exit_code == 0, healed.error
    assert healed.result["rowsInserted"] == 1500
    assert pg_count() == (2500, 2500)  # no gap, no duplicates


def test_unknown_resource_is_404(http_source, runner, tmp_path: Path) -> None:
    spec = rest_spec(
        http_source.url,
        duckdb_destination(tmp_path / "x.duckdb"),
        resources=[rest_resource(path="no_such_thing")],
    )
    outcome = runner.run(spec)
    assert outcome.exit_code == 1
    assert outcome.error.startswith("source HTTP 404: ")
    assert "/no_such_thing" in outcome.error and "unknown resource" in outcome.error


def test_wrong_source_token_is_bad_credentials(http_source, runner, tmp_path: Path) -> None:
    http_source.state.token = "right-token"
    runner.secret("demo-source", "token", "wrong-token")
    spec = rest_spec(
        http_source.url,
        duckdb_destination(tmp_path / "x.duckdb"),
        auth={"type": "bearer", "tokenSecretRef": {"name": "demo-source", "key": "token"}},
    )
    outcome = runner.run(spec)
    assert outcome.exit_code == 1
    assert outcome.error.startswith("bad credentials: source answered HTTP 401")
    assert "wrong-token" not in outcome.result["report"]


def test_source_unreachable(runner, tmp_path: Path) -> None:
    from tests.support.processes import free_port

    url = f"http://127.0.0.1:{free_port()}/"
    outcome = runner.run(rest_spec(url, duckdb_destination(tmp_path / "x.duckdb")))
    assert outcome.exit_code == 1
    assert outcome.error.startswith("source unreachable: ")
    assert "connection refused" in outcome.error


def test_nested_lists_are_counted_in_their_own_tables(http_source, runner, tmp_path) -> None:
    http_source.state.nested = True
    db = tmp_path / "nested.duckdb"
    spec = rest_spec(http_source.url, duckdb_destination(db), write_disposition="merge")
    first = runner.run(spec, name="nested")
    assert first.exit_code == 0, first.error
    assert first.result["progressCounts"]["load"] == {"items": 1000, "items__tags": 2000}
    assert first.result["rowsInserted"] == 3000
    assert duckdb_query(db, "SELECT count(*) FROM demo_data.items__tags") == [(2000,)]

    http_source.state.records = 1010
    second = runner.run(spec, name="nested")
    # the cursor is inclusive: record 1000 comes again, dlt drops it as already seen
    assert second.result["progressCounts"]["load"] == {"items": 10, "items__tags": 20}
    assert second.result["rowsInserted"] == 30
    assert duckdb_query(db, "SELECT count(*) FROM demo_data.items__tags") == [(2020,)]


def test_a_failed_count_after_a_good_load_still_succeeds(
    http_source, runner, tmp_path, monkeypatch
) -> None:
    """Once dlt has committed the load, the run succeeds (a retry would load it twice)."""
    from datapipelines.runner import sync

    def broken(*args: object) -> dict:
        raise RuntimeError("connection lost while counting")

    monkeypatch.setattr(sync, "count_loaded_rows", broken)
    db = tmp_path / "c.duckdb"
    outcome = runner.run(rest_spec(http_source.url, duckdb_destination(db)))
    assert outcome.exit_code == 0, outcome.error
    assert outcome.result["rowsInserted"] == 1000
    assert "from dlt's normalize counts" in outcome.result["report"]
    assert duckdb_query(db, "SELECT count(*) FROM demo_data.items") == [(1000,)]
