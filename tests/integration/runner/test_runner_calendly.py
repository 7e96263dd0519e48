"""`type: calendly` against the Calendly mock: the organization discovered from /users/me,
collections followed by `pagination.next_page`, users per membership, invitees per event,
exact counts, and a start date that windows the events."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from datapipelines.mocks import serve
from datapipelines.mocks.calendly import CalendlyApi
from tests.integration.runner.runnerkit import Runner, duckdb_destination, duckdb_query

TABLES = (
    "organizations",
    "organization_memberships",
    "users",
    "event_types",
    "scheduled_events",
    "scheduled_event_invitees",
)


def calendly_spec(url: str, db: Path, **source: Any) -> dict[str, Any]:
    return {
        "type": "calendly",
        "schemaName": "meetings",
        "source": {
            "calendly": {
                "baseUrl": url,
                "tokenSecretRef": {"name": "calendly", "key": "token"},
                **source,
            }
        },
        "destination": duckdb_destination(db),
    }


def test_a_full_sync_with_exact_counts(runner: Runner, tmp_path: Path) -> None:
    runner.secret("calendly", "token", "calendly-token")
    db = tmp_path / "warehouse.duckdb"
    with serve(CalendlyApi(rows=60)) as api:
        outcome = runner.run(calendly_spec(api.url, db), name="meetings")
        expected = api.expected_counts()
    assert outcome.exit_code == 0, outcome.error
    for table in TABLES:
        assert duckdb_query(db, f"SELECT count(*) FROM meetings.{table}") == [(expected[table],)], (
            table
        )


def test_a_start_date_windows_the_events(runner: Runner, tmp_path: Path) -> None:
    runner.secret("calendly", "token", "calendly-token")
    db = tmp_path / "warehouse.duckdb"
    with serve(CalendlyApi(rows=60)) as api:
        starts = sorted(e["start_time"] for e in api.events)
        middle = starts[len(starts) // 2]
        outcome = runner.run(
            calendly_spec(api.url, db, streams=["scheduled_events"], startDate=middle[:19] + "Z"),
            name="meetings",
        )
    assert outcome.exit_code == 0, outcome.error
    later = sum(1 for s in starts if s[:19] >= middle[:19])
    assert duckdb_query(db, "SELECT count(*) FROM meetings.scheduled_events") == [(later,)]
