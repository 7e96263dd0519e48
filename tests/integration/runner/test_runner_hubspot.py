"""`type: hubspot` against the HubSpot mock: properties discovered, every object paged by
`paging.next.after` with exact counts, 429s waited out, a bad token named."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from datapipelines.mocks import serve
from datapipelines.mocks.hubspot import HubSpotApi
from tests.integration.runner.runnerkit import Runner, duckdb_destination, duckdb_query


def hubspot_spec(url: str, db: Path, **source: Any) -> dict[str, Any]:
    return {
        "type": "hubspot",
        "schemaName": "crm",
        "source": {
            "hubspot": {
                "baseUrl": url,
                "tokenSecretRef": {"name": "hubspot", "key": "token"},
                **source,
            }
        },
        "destination": duckdb_destination(db),
    }


def test_a_full_sync_with_discovered_properties_and_rate_limits(
    runner: Runner, tmp_path: Path
) -> None:
    runner.secret("hubspot", "token", "hubspot-token")
    db = tmp_path / "warehouse.duckdb"
    with serve(HubSpotApi(rows=120)) as api:
        api.inject(429, times=3, retry_after=1, path_prefix="/crm/v3/objects/deals")
        outcome = runner.run(hubspot_spec(api.url, db), name="crm")
        expected = api.expected_counts()
        discovered = api.stats.count("/crm/v3/properties/")
    assert outcome.exit_code == 0, outcome.error
    assert discovered == len(api.objects)  # every object; owners and pipelines have none
    for table, rows in expected.items():
        assert duckdb_query(db, f"SELECT count(*) FROM crm.{table}") == [(rows,)], table
    columns = {r[0] for r in duckdb_query(db, "DESCRIBE crm.contacts")}
    assert "properties__email" in columns and "properties__hs_lastmodifieddate" in columns
    assert re.search(r"HTTP waits before retries: \d+ \(429: 3\b", outcome.result["report"])


def test_a_second_run_searches_only_what_changed(runner: Runner, tmp_path: Path) -> None:
    runner.secret("hubspot", "token", "hubspot-token")
    db = tmp_path / "warehouse.duckdb"
    streams = ["contacts", "deals", "deal_line_items", "owners"]
    with serve(HubSpotApi(rows=60)) as api:
        first = runner.run(hubspot_spec(api.url, db, streams=streams), name="crm")
        assert first.exit_code == 0, first.error
        api.touch(4, "contacts")
        deals = api.touch(3, "deals")
        api.reset()  # count the second run's requests only
        second = runner.run(hubspot_spec(api.url, db, streams=streams), name="crm")
        expected = api.expected_counts()
        association_reads = api.stats.count("/crm/v4/objects/deals/")
    assert second.exit_code == 0, second.error
    load = second.result["progressCounts"]["load"]
    assert load["contacts"] == 4 and load["deals"] == 3, load
    assert load["deal_line_items"] == 6 and association_reads == 3  # the changed deals only
    assert load["owners"] == len(api.owners)  # owners have no cursor: read whole, merged
    for table in ("contacts", "deals", "deal_line_items", "owners"):
        assert duckdb_query(db, f"SELECT count(*) FROM crm.{table}") == [(expected[table],)]
    changed = duckdb_query(
        db, "SELECT id FROM crm.deals ORDER BY properties__hs_lastmodifieddate DESC LIMIT 3"
    )
    assert sorted(r[0] for r in changed) == sorted(deals)


def test_a_bad_token_fails_naming_the_status(runner: Runner, tmp_path: Path) -> None:
    runner.secret("hubspot", "token", "expired")
    with serve(HubSpotApi(rows=5)) as api:
        outcome = runner.run(
            hubspot_spec(api.url, tmp_path / "warehouse.duckdb", streams=["owners"]), name="crm"
        )
    assert outcome.exit_code != 0
    assert "401" in (outcome.error or ""), outcome.error
    assert "expired" not in str(outcome.result)


def test_a_start_date_begins_the_first_run_there(runner: Runner, tmp_path: Path) -> None:
    runner.secret("hubspot", "token", "hubspot-token")
    db = tmp_path / "warehouse.duckdb"
    with serve(HubSpotApi(rows=60)) as api:
        spec = hubspot_spec(api.url, db, streams=["contacts"], startDate="2024-01-02")
        outcome = runner.run(spec, name="crm")
        later = [
            r
            for r in api.objects["contacts"]
            if r["properties"]["lastmodifieddate"] >= "2024-01-02"
        ]
    assert outcome.exit_code == 0, outcome.error
    assert 0 < len(later) < 60
    assert duckdb_query(db, "SELECT count(*) FROM crm.contacts") == [(len(later),)]
