"""`type: intercom` against the Intercom mock: cursor and page lists, conversation parts read
per conversation, tickets through the search API, exact counts, the version header sent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from datapipelines.mocks import serve
from datapipelines.mocks.intercom import IntercomApi
from tests.integration.runner.runnerkit import Runner, duckdb_destination, duckdb_query

DEFAULT = ("contacts", "companies", "conversations", "conversation_parts", "tickets")


def intercom_spec(url: str, db: Path, **source: Any) -> dict[str, Any]:
    return {
        "type": "intercom",
        "schemaName": "support",
        "source": {
            "intercom": {
                "baseUrl": url,
                "tokenSecretRef": {"name": "intercom", "key": "token"},
                **source,
            }
        },
        "destination": duckdb_destination(db),
    }


def test_a_full_sync_of_the_default_streams_with_exact_counts(
    runner: Runner, tmp_path: Path
) -> None:
    runner.secret("intercom", "token", "intercom-token")
    db = tmp_path / "warehouse.duckdb"
    with serve(IntercomApi(rows=170)) as api:
        outcome = runner.run(intercom_spec(api.url, db), name="support")
        expected = api.expected_counts()
        versions = set(api.versions)
    assert outcome.exit_code == 0, outcome.error
    for table in DEFAULT:
        assert duckdb_query(db, f"SELECT count(*) FROM support.{table}") == [(expected[table],)]
    assert versions == {"2.14"}
    parents = duckdb_query(
        db, "SELECT count(DISTINCT _conversations_id) FROM support.conversation_parts"
    )[0][0]
    assert parents == expected["conversations"]


def test_optional_streams_on_request(runner: Runner, tmp_path: Path) -> None:
    runner.secret("intercom", "token", "intercom-token")
    db = tmp_path / "warehouse.duckdb"
    with serve(IntercomApi(rows=10)) as api:
        outcome = runner.run(
            intercom_spec(api.url, db, streams=["admins", "teams", "tags"]), name="support"
        )
        admins = len(api.admins)
    assert outcome.exit_code == 0, outcome.error
    assert duckdb_query(db, "SELECT count(*) FROM support.admins") == [(admins,)]


def test_a_second_run_reads_only_what_changed(runner: Runner, tmp_path: Path) -> None:
    runner.secret("intercom", "token", "intercom-token")
    db = tmp_path / "warehouse.duckdb"
    spec_streams = ["contacts", "conversations", "conversation_parts"]
    with serve(IntercomApi(rows=80)) as api:
        first = runner.run(intercom_spec(api.url, db, streams=spec_streams), name="support")
        assert first.exit_code == 0, first.error
        api.touch(5, "contacts")
        api.touch(3, "conversations")  # each gets a new part
        api.reset()  # count the second run's requests only
        second = runner.run(intercom_spec(api.url, db, streams=spec_streams), name="support")
        expected = api.expected_counts()
        conversation_reads = api.stats.count("/conversations/") - api.stats.count(
            "/conversations/search"
        )
    assert second.exit_code == 0, second.error
    load = second.result["progressCounts"]["load"]
    assert load["contacts"] == 5 and load["conversations"] == 3
    assert conversation_reads == 3  # only the changed conversations are read for their parts
    for table in ("contacts", "conversations", "conversation_parts"):
        assert duckdb_query(db, f"SELECT count(*) FROM support.{table}") == [(expected[table],)]
