"""`type: pandadoc` against the PandaDoc mock: documents paged until an empty page, recipients
and tokens from each document's details, exact counts; a re-run reads only changed documents."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from datapipelines.mocks import serve
from datapipelines.mocks.pandadoc import PandaDocApi
from tests.integration.runner.runnerkit import Runner, duckdb_destination, duckdb_query

TABLES = ("documents", "recipients", "tokens")


def pandadoc_spec(url: str, db: Path, **source: Any) -> dict[str, Any]:
    return {
        "type": "pandadoc",
        "schemaName": "docs",
        "source": {
            "pandadoc": {
                "baseUrl": url,
                "apiKeySecretRef": {"name": "pandadoc", "key": "api-key"},
                **source,
            }
        },
        "destination": duckdb_destination(db),
    }


def test_a_full_sync_then_only_the_changed_documents(runner: Runner, tmp_path: Path) -> None:
    runner.secret("pandadoc", "api-key", "pandadoc-key")
    db = tmp_path / "warehouse.duckdb"
    with serve(PandaDocApi(rows=130)) as api:
        first = runner.run(pandadoc_spec(api.url, db), name="docs")
        assert first.exit_code == 0, first.error
        expected = api.expected_counts()
        for table in TABLES:
            assert duckdb_query(db, f"SELECT count(*) FROM docs.{table}") == [(expected[table],)]
        touched = api.touch(4)
        api.reset()
        second = runner.run(pandadoc_spec(api.url, db), name="docs")
        details = api.stats.count("/public/v1/documents/")
        now = api.expected_counts()  # the touched documents' tokens changed
    assert second.exit_code == 0, second.error
    # modified_from is GTE (as the original): the last document of the first run comes again
    assert 4 <= second.result["progressCounts"]["load"]["documents"] <= 5
    assert details <= 2 * 5  # recipients and tokens of the changed documents only
    assert len(touched) == 4
    # a changed document's tokens replace its earlier ones (removed ones go too)
    for table in TABLES:
        assert duckdb_query(db, f"SELECT count(*) FROM docs.{table}") == [(now[table],)], table
    touched_tokens = duckdb_query(db, "SELECT count(*) FROM docs.tokens WHERE name = 'Touched'")[0][
        0
    ]
    assert touched_tokens == 4
