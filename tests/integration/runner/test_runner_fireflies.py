"""`type: fireflies` against the Fireflies GraphQL mock: transcripts paged by skip/limit in the
query's variables, participants as a child table, exact counts; a re-run reads only new
meetings (and the lookback), merged without doubles."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from datapipelines.mocks import serve
from datapipelines.mocks.fireflies import FirefliesApi
from tests.integration.runner.runnerkit import Runner, duckdb_destination, duckdb_query


def fireflies_spec(url: str, db: Path, **source: Any) -> dict[str, Any]:
    return {
        "type": "fireflies",
        "schemaName": "calls",
        "source": {
            "fireflies": {
                "baseUrl": url,
                "apiKeySecretRef": {"name": "fireflies", "key": "api-key"},
                **source,
            }
        },
        "destination": duckdb_destination(db),
    }


def test_transcripts_then_only_new_meetings(runner: Runner, tmp_path: Path) -> None:
    runner.secret("fireflies", "api-key", "fireflies-key")
    db = tmp_path / "warehouse.duckdb"
    with serve(FirefliesApi(rows=120)) as api:
        first = runner.run(fireflies_spec(api.url, db, lookbackMinutes=0), name="calls")
        assert first.exit_code == 0, first.error
        expected = api.expected_counts(["transcripts", "transcript_participants"])
        assert duckdb_query(db, "SELECT count(*) FROM calls.transcripts") == [
            (expected["transcripts"],)
        ]
        assert duckdb_query(db, "SELECT count(*) FROM calls.transcripts__participants") == [
            (expected["transcript_participants"],)
        ]
        api.touch(3)  # three new meetings
        second = runner.run(fireflies_spec(api.url, db, lookbackMinutes=0), name="calls")
        after = api.expected_counts(["transcripts"])
    assert second.exit_code == 0, second.error
    assert second.result["progressCounts"]["load"]["transcripts"] <= 4  # new ones (+ the last)
    assert duckdb_query(db, "SELECT count(*) FROM calls.transcripts") == [(after["transcripts"],)]


def test_users_on_request(runner: Runner, tmp_path: Path) -> None:
    runner.secret("fireflies", "api-key", "fireflies-key")
    db = tmp_path / "warehouse.duckdb"
    with serve(FirefliesApi(rows=10)) as api:
        outcome = runner.run(fireflies_spec(api.url, db, streams=["users"]), name="calls")
        users = api.expected_counts(["users"])["users"]
    assert outcome.exit_code == 0, outcome.error
    assert duckdb_query(db, "SELECT count(*) FROM calls.users") == [(users,)]
