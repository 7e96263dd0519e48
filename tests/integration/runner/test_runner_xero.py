"""`type: xero` against the Xero mock, run by hand (the rotated refresh token goes back into
the secret file; in a cluster into the Secret: tests/integration/operator/test_operator_xero.py):
the token rotates on every run, a used one fails naming the way out, a 401 refreshes once, 429s
are waited out, and the second run reads only what changed."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from datapipelines.mocks import serve
from datapipelines.mocks.xero import CLIENT_ID, CLIENT_SECRET, INITIAL_REFRESH_TOKEN, XeroApi
from tests.integration.runner.runnerkit import Runner, duckdb_destination, duckdb_query


def xero_spec(url: str, db: Path, **source: Any) -> dict[str, Any]:
    return {
        "type": "xero",
        "schemaName": "accounting",
        "source": {
            "xero": {
                "baseUrl": url,
                "tokenUrl": f"{url}/connect/token",
                "secretName": "xero",
                "requestsPerSecond": 200,  # the default (1/s, Xero's 60/min) would slow the test
                **source,
            }
        },
        "destination": duckdb_destination(db),
    }


def xero_secret(runner: Runner, refresh_token: str = INITIAL_REFRESH_TOKEN) -> Path:
    runner.secret("xero", "client_id", CLIENT_ID)
    runner.secret("xero", "client_secret", CLIENT_SECRET)
    runner.secret("xero", "refresh_token", refresh_token)
    return runner.secrets_dir / "xero" / "refresh_token"


def test_three_runs_rotate_three_tokens_and_the_second_reads_only_changes(
    runner: Runner, tmp_path: Path
) -> None:
    stored = xero_secret(runner)
    db = tmp_path / "warehouse.duckdb"
    with serve(XeroApi(rows=60)) as api:
        first = runner.run(xero_spec(api.url, db), name="books")
        assert first.exit_code == 0, first.error
        expected = api.expected_counts()
        tokens = [stored.read_text()]
        touched = api.touch(4, "invoices")
        second = runner.run(xero_spec(api.url, db), name="books")
        assert second.exit_code == 0, second.error
        tokens.append(stored.read_text())
        api.inject(429, times=2, retry_after=1, path_prefix="/api.xro/2.0/Currencies")
        third = runner.run(xero_spec(api.url, db, streams=["currencies"]), name="books")
        assert third.exit_code == 0, third.error
        tokens.append(stored.read_text())
        assert api.refreshes == 3 and api.refused_refreshes == 0
        assert tokens == ["xero-refresh-1", "xero-refresh-2", "xero-refresh-3"]
        assert api.current_refresh_token == tokens[-1]
    for table, rows in expected.items():
        assert duckdb_query(db, f"SELECT count(*) FROM accounting.{table}") == [(rows,)], table
    assert re.search(r"HTTP waits before retries: \d+ \(429: 2\b", third.result["report"])
    load = second.result["progressCounts"]["load"]
    assert load.get("invoices") == 4 and not load.get("contacts"), load
    changed = duckdb_query(
        db, "SELECT invoice_id FROM accounting.invoices ORDER BY updated_date_utc DESC LIMIT 4"
    )
    assert sorted(r[0] for r in changed) == sorted(touched)
    for outcome in (first, second, third):
        assert "xero-refresh" not in str(outcome.result) and "xero-access" not in str(
            outcome.result
        )


def test_a_used_refresh_token_fails_saying_to_authorise_again(
    runner: Runner, tmp_path: Path
) -> None:
    stored = xero_secret(runner)
    with serve(XeroApi(rows=5)) as api:
        ok = runner.run(xero_spec(api.url, tmp_path / "w.duckdb", streams=["currencies"]))
        assert ok.exit_code == 0, ok.error
        stored.write_text(INITIAL_REFRESH_TOKEN)  # an old copy of the Secret restored
        used = runner.run(xero_spec(api.url, tmp_path / "w.duckdb", streams=["currencies"]))
    assert used.exit_code == 2, used.error
    assert (used.error or "").startswith("bad credentials: ")
    assert "invalid_grant" in (used.error or "") and "authorise again" in (used.error or "")


def test_a_401_mid_run_refreshes_once_and_goes_on(runner: Runner, tmp_path: Path) -> None:
    stored = xero_secret(runner)
    with serve(XeroApi(rows=10)) as api:
        api.inject(401, times=1, path_prefix="/api.xro/2.0/Contacts")
        outcome = runner.run(xero_spec(api.url, tmp_path / "w.duckdb", streams=["contacts"]))
        assert outcome.exit_code == 0, outcome.error
        assert api.refreshes == 2  # at the start, and once after the 401
        assert stored.read_text() == api.current_refresh_token == "xero-refresh-2"
    rows = duckdb_query(tmp_path / "w.duckdb", "SELECT count(*) FROM accounting.contacts")
    assert rows == [(10,)]
