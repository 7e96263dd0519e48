"""`type: trello` against the Trello mock: every table with the mock's exact counts, stream
selection, a bad token named, and a re-run that merges rather than duplicates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from datapipelines.mocks import serve
from datapipelines.mocks.trello import TrelloApi
from tests.integration.runner.runnerkit import Runner, duckdb_destination, duckdb_query

TABLES = ("boards", "organizations", "lists", "members", "checklists", "cards")


def trello_spec(url: str, db: Path, **source: Any) -> dict[str, Any]:
    return {
        "type": "trello",
        "schemaName": "trello",
        "source": {
            "trello": {
                "baseUrl": url + "/1",
                "apiKeySecretRef": {"name": "trello", "key": "key"},
                "tokenSecretRef": {"name": "trello", "key": "token"},
                **source,
            }
        },
        "destination": duckdb_destination(db),
    }


@pytest.fixture
def trello_runner(runner: Runner) -> Runner:
    runner.secret("trello", "key", "trello-key")
    runner.secret("trello", "token", "trello-token")
    return runner


def counts(db: Path, tables: tuple[str, ...]) -> dict[str, int]:
    return {t: duckdb_query(db, f"SELECT count(*) FROM trello.{t}")[0][0] for t in tables}


def test_a_full_sync_loads_every_stream_with_exact_counts_and_a_rerun_merges(
    trello_runner: Runner, tmp_path: Path
) -> None:
    db = tmp_path / "warehouse.duckdb"
    with serve(TrelloApi(rows=40)) as api:
        first = trello_runner.run(trello_spec(api.url, db), name="trello")
        assert first.exit_code == 0, first.error
        expected = api.expected_counts()
        assert counts(db, TABLES) == {t: expected[t] for t in TABLES}
        touched = api.touch(4)
        again = trello_runner.run(trello_spec(api.url, db), name="trello")
        assert again.exit_code == 0, again.error
        assert counts(db, TABLES) == {t: expected[t] for t in TABLES}  # merged on id
    # the second run loads only the cards active since the first, the rest merged again
    assert again.result["progressCounts"]["load"]["cards"] == 4
    edited = duckdb_query(db, "SELECT id FROM trello.cards WHERE \"desc\" LIKE '%(edited %'")
    assert sorted(r[0] for r in edited) == sorted(touched)
    cards = duckdb_query(db, "SELECT count(DISTINCT _boards_id) FROM trello.cards")[0][0]
    assert cards == expected["boards"]
    assert "trello" in first.result["report"]


def test_stream_selection_loads_only_the_chosen_tables(
    trello_runner: Runner, tmp_path: Path
) -> None:
    db = tmp_path / "warehouse.duckdb"
    with serve(TrelloApi(rows=20)) as api:
        outcome = trello_runner.run(trello_spec(api.url, db, streams=["cards"]), name="trello")
        expected = api.expected_counts()["cards"]
    assert outcome.exit_code == 0, outcome.error
    tables = {
        row[0]
        for row in duckdb_query(
            db,
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = 'trello' AND table_name NOT LIKE '\\_dlt%' ESCAPE '\\' "
            "AND table_name NOT LIKE '\\_datapipelines%' ESCAPE '\\'",
        )
    }
    assert {t.split("__")[0] for t in tables} == {"cards"}  # cards and its nested lists
    assert counts(db, ("cards",)) == {"cards": expected}


def test_a_wrong_token_fails_naming_bad_credentials(runner: Runner, tmp_path: Path) -> None:
    runner.secret("trello", "key", "trello-key")
    runner.secret("trello", "token", "revoked")
    with serve(TrelloApi(rows=5)) as api:
        outcome = runner.run(trello_spec(api.url, tmp_path / "warehouse.duckdb"), name="trello")
    assert outcome.exit_code != 0
    assert "401" in (outcome.error or ""), outcome.error
    assert "revoked" not in str(outcome.result), "the token leaked into the result"
