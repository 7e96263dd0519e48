"""The first page requested before dlt is imported (prefetch.py), through the real runner
against the demo HTTP source: used when dlt sends the same request, each page asked for once;
a wrong guess costs one extra request and changes nothing loaded."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from datapipelines.runner import prefetch
from tests.integration.runner.runnerkit import (
    duckdb_destination,
    duckdb_query,
    rest_resource,
    rest_spec,
)

PAGES = [f"/items?page_size=100&page={n}" for n in range(1, 11)]


def spec(url: str, db: Path) -> dict:
    return rest_spec(
        url,
        duckdb_destination(db),
        resources=[rest_resource(incremental=False)],
        auth={"type": "bearer", "tokenSecretRef": {"name": "demo-source", "key": "token"}},
    )


@pytest.fixture
def prefetch_log(caplog):
    caplog.set_level(logging.DEBUG, logger=prefetch.__name__)
    return caplog


def test_the_prefetched_first_page_is_used_and_no_page_is_asked_twice(
    http_source, runner, tmp_path: Path, prefetch_log
) -> None:
    http_source.state.token = "s3cret"
    runner.secret("demo-source", "token", "s3cret")
    db = tmp_path / "w.duckdb"

    outcome = runner.run(spec(http_source.url, db), name="prefetched")

    assert outcome.exit_code == 0, outcome.error
    assert "the first page of items was requested before dlt started" in prefetch_log.text
    assert http_source.item_requests() == PAGES
    assert duckdb_query(db, "SELECT count(*), count(DISTINCT id) FROM demo_data.items") == [
        (1000, 1000)
    ]


def test_a_wrong_guess_costs_one_request_and_nothing_else(
    http_source, runner, tmp_path: Path, prefetch_log, monkeypatch
) -> None:
    def wrong(config: dict) -> prefetch.FirstRequest:
        return prefetch.FirstRequest("items", http_source.url + "items", (("page", 1),))

    monkeypatch.setattr(prefetch, "first_request", wrong)
    runner.secret("demo-source", "token", "unused")
    db = tmp_path / "w.duckdb"

    outcome = runner.run(spec(http_source.url, db), name="guessed-wrong")

    assert outcome.exit_code == 0, outcome.error
    assert "was not used: dlt's first request differed" in prefetch_log.text
    assert sorted(http_source.item_requests()) == sorted(["/items?page=1", *PAGES])
    assert outcome.result["rowsInserted"] == 1000


def test_incremental_resources_are_not_prefetched(
    http_source, runner, tmp_path: Path, prefetch_log
) -> None:
    db = tmp_path / "w.duckdb"
    spec_ = rest_spec(http_source.url, duckdb_destination(db))  # incremental cursor

    outcome = runner.run(spec_, name="incremental")

    assert outcome.exit_code == 0, outcome.error
    assert "requested before dlt started" not in prefetch_log.text
    assert len(http_source.item_requests()) == 10
