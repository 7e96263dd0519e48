"""`type: wassenger` against the Wassenger mock: pages from 0 until an empty one, per-device
streams, exact counts, and endpoints the account lacks (404/403) skipped, not failed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from datapipelines.mocks import serve
from datapipelines.mocks.wassenger import WassengerApi
from tests.integration.runner.runnerkit import Runner, duckdb_destination, duckdb_query

DEFAULT = ("devices", "messages", "chats", "contacts", "groups")


def wassenger_spec(url: str, db: Path, **source: Any) -> dict[str, Any]:
    return {
        "type": "wassenger",
        "schemaName": "whatsapp",
        "source": {
            "wassenger": {
                "baseUrl": url + "/v1",
                "apiKeySecretRef": {"name": "wassenger", "key": "api-key"},
                **source,
            }
        },
        "destination": duckdb_destination(db),
    }


def test_a_full_sync_with_exact_counts(runner: Runner, tmp_path: Path) -> None:
    runner.secret("wassenger", "api-key", "wassenger-token")
    db = tmp_path / "warehouse.duckdb"
    with serve(WassengerApi(rows=130)) as api:
        outcome = runner.run(wassenger_spec(api.url, db), name="whatsapp")
        expected = api.expected_counts()
    assert outcome.exit_code == 0, outcome.error
    for table in DEFAULT:
        assert duckdb_query(db, f"SELECT count(*) FROM whatsapp.{table}") == [(expected[table],)]


def test_endpoints_the_account_lacks_are_skipped(runner: Runner, tmp_path: Path) -> None:
    runner.secret("wassenger", "api-key", "wassenger-token")
    db = tmp_path / "warehouse.duckdb"
    with serve(WassengerApi(rows=20, missing={"groups"}, forbidden={"campaigns"})) as api:
        outcome = runner.run(
            wassenger_spec(api.url, db, streams=["devices", "groups", "campaigns", "team"]),
            name="whatsapp",
        )
        expected = api.expected_counts(["devices", "team"])
    assert outcome.exit_code == 0, outcome.error
    assert duckdb_query(db, "SELECT count(*) FROM whatsapp.devices") == [(expected["devices"],)]
    assert duckdb_query(db, "SELECT count(*) FROM whatsapp.team") == [(expected["team"],)]
