"""A rest_api source against a vendor mock that rate-limits: 429 with Retry-After is waited out
(capped), counted in the report, and the rows are exactly the mock's."""

from __future__ import annotations

import re
from pathlib import Path

from datapipelines.mocks import serve
from datapipelines.mocks.hubspot import HubSpotApi
from tests.integration.runner.runnerkit import (
    Runner,
    duckdb_destination,
    duckdb_query,
    rest_spec,
)


def contacts_spec(url: str, db: Path, retry: dict | None) -> dict:
    resource = {
        "name": "contacts",
        "endpoint": {
            "path": "crm/v3/objects/contacts",
            "params": {"limit": 20},
            "data_selector": "results",
            "paginator": {"type": "json_link", "next_url_path": "paging.next.link"},
        },
        "primary_key": "id",
    }
    spec = rest_spec(
        url + "/",
        duckdb_destination(db),
        schema="crm",
        resources=[resource],
        auth={"type": "bearer", "tokenSecretRef": {"name": "hubspot", "key": "token"}},
    )
    if retry is not None:
        spec["source"]["restApi"]["retry"] = retry
    return spec


def test_429s_with_retry_after_are_waited_out_and_counted(runner: Runner, tmp_path: Path) -> None:
    runner.secret("hubspot", "token", "hubspot-token")
    db = tmp_path / "warehouse.duckdb"
    with serve(HubSpotApi(rows=100)) as api:
        api.inject(429, times=4, retry_after=2, path_prefix="/crm/v3/objects/contacts")
        retry = {"maxAttempts": 8, "backoffFactor": 0.1, "maxDelaySeconds": 1}
        outcome = runner.run(contacts_spec(api.url, db, retry), name="crm")
        expected = api.expected_counts()["contacts"]
    assert outcome.exit_code == 0, outcome.error
    # in a pod the runner's process runs one sync; here other tests' dlt clients share it
    assert re.search(r"HTTP waits before retries: \d+ \(429: 4\b", outcome.result["report"])
    assert duckdb_query(db, "SELECT count(*) FROM crm.contacts") == [(expected,)]


def test_without_enough_attempts_the_429_fails_the_run_naming_it(
    runner: Runner, tmp_path: Path
) -> None:
    runner.secret("hubspot", "token", "hubspot-token")
    db = tmp_path / "warehouse.duckdb"
    with serve(HubSpotApi(rows=10)) as api:
        api.inject(429, times=50, retry_after=1, path_prefix="/crm/v3/objects/contacts")
        retry = {"maxAttempts": 2, "backoffFactor": 0.1, "maxDelaySeconds": 1}
        outcome = runner.run(contacts_spec(api.url, db, retry), name="crm")
    assert outcome.exit_code != 0
    assert "429" in (outcome.error or ""), outcome.error
