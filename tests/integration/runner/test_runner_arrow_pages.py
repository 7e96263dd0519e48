"""Flat rest_api pages go to the destination as Arrow tables, nested ones as rows through dlt's
normalizer: both make the same columns, and a table made by one takes the other's pages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.integration.runner.runnerkit import (
    Runner,
    duckdb_destination,
    duckdb_query,
    postgres_destination,
    rest_spec,
)

pytestmark = pytest.mark.postgres

COLUMNS_SQL = (
    "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
    "WHERE table_schema = 'demo_data' AND table_name = 'items' ORDER BY ordinal_position"
)


class Destinations:
    """A fresh destination of one kind per call, and SQL against it."""

    def __init__(self, kind: str, tmp_path: Path, request: Any) -> None:
        self.kind = kind
        self.tmp_path = tmp_path
        self.request = request
        self.made = 0

    def new(self) -> dict[str, Any]:
        self.made += 1
        if self.kind == "duckdb":
            return duckdb_destination(self.tmp_path / f"wh{self.made}" / "arrow.duckdb")
        server = self.request.getfixturevalue("postgres_server")
        self.request.getfixturevalue("runner").secret("warehouse", "password", server.password)
        return postgres_destination(server, server.create_database())

    def query(self, destination: dict[str, Any], sql: str) -> list[tuple]:
        if self.kind == "duckdb":
            return duckdb_query(Path(destination["duckdb"]["path"]), sql)
        server = self.request.getfixturevalue("postgres_server")
        return [tuple(r) for r in server.query(sql, database=destination["postgres"]["database"])]


@pytest.fixture(params=["duckdb", "postgres"])
def destinations(request, tmp_path: Path) -> Destinations:
    return Destinations(request.param, tmp_path, request)


def test_arrow_pages_make_the_columns_rows_make(http_source, runner: Runner, destinations) -> None:
    made = {}
    for arrow in ("true", "false"):
        destination = destinations.new()
        outcome = runner.run(
            rest_spec(http_source.url, destination, write_disposition="merge"),
            name=f"arrow-{arrow}",
            RUNNER__ARROW_PAGES=arrow,
        )
        assert outcome.exit_code == 0, outcome.error
        report = outcome.result["report"]
        if arrow == "true":
            assert "pages: 10 as Arrow tables, 0 as rows" in report
        else:
            assert "as Arrow tables" not in report
        made[arrow] = destinations.query(destination, COLUMNS_SQL)
    assert made["true"] == made["false"]
    assert [c[0] for c in made["true"]][:3] == ["id", "updated_at", "name"]


@pytest.mark.parametrize("first_nested", [True, False], ids=["rows-then-arrow", "arrow-then-rows"])
@pytest.mark.parametrize("disposition", ["append", "merge"])
def test_either_kind_of_page_fits_a_table_made_by_the_other(
    http_source, runner: Runner, destinations, first_nested: bool, disposition: str
) -> None:
    destination = destinations.new()
    spec = rest_spec(http_source.url, destination, write_disposition=disposition)
    http_source.state.records = 500
    http_source.state.nested = first_nested
    first = runner.run(spec, name="mixed")
    assert first.exit_code == 0, first.error
    columns = destinations.query(destination, COLUMNS_SQL)

    http_source.state.records = 1000
    http_source.state.nested = not first_nested
    second = runner.run(spec, name="mixed")
    assert second.exit_code == 0, second.error
    assert second.result["progressCounts"]["load"]["items"] == 500
    assert destinations.query(destination, COLUMNS_SQL) == columns  # no column added or retyped
    assert destinations.query(
        destination, "SELECT count(*), count(DISTINCT id) FROM demo_data.items"
    ) == [(1000, 1000)]
    tags = destinations.query(destination, "SELECT count(*) FROM demo_data.items__tags")
    assert tags == [(1000,)]  # the 500 nested records, 2 tags each
