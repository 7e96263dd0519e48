"""The source kinds the SaaS types are built from, in a plain `rest_api` connection as a user
writes it: a GraphQL query paged by its variables (against the Fireflies mock), and
`auth.type: oauth2_refresh` with a rotating refresh token (against the Xero mock)."""

from __future__ import annotations

from pathlib import Path

from datapipelines.mocks import serve
from datapipelines.mocks.fireflies import API_KEY, FirefliesApi
from datapipelines.mocks.xero import CLIENT_ID, CLIENT_SECRET, INITIAL_REFRESH_TOKEN, XeroApi
from tests.integration.runner.runnerkit import Runner, duckdb_destination, duckdb_query

#: A GraphQL query in a rest_api body: braces doubled (dlt expands {…} placeholders in it).
QUERY = (
    "query Users($limit: Int, $skip: Int) {{ transcripts(limit: $limit, skip: $skip) "
    "{{ id title dateString }} }}"
)


def test_a_graphql_query_paged_by_its_variables(runner: Runner, tmp_path: Path) -> None:
    runner.secret("ff", "key", API_KEY)
    db = tmp_path / "w.duckdb"
    spec = {
        "type": "rest_api",
        "schemaName": "calls",
        "source": {
            "restApi": {
                "baseUrl": "",
                "auth": {"type": "bearer", "tokenSecretRef": {"name": "ff", "key": "key"}},
                "resources": [
                    {
                        "name": "transcripts",
                        "primary_key": "id",
                        "write_disposition": "merge",
                        "endpoint": {
                            "path": "graphql",
                            "method": "POST",
                            "json": {"query": QUERY, "variables": {}},
                            "data_selector": "data.transcripts",
                            "paginator": {
                                "type": "offset",
                                "limit": 7,
                                "offset_body_path": "variables.skip",
                                "limit_body_path": "variables.limit",
                                "total_path": "$null",
                                "stop_after_empty_page": True,
                            },
                        },
                    }
                ],
            }
        },
        "destination": duckdb_destination(db),
    }
    with serve(FirefliesApi(rows=30)) as api:
        spec["source"]["restApi"]["baseUrl"] = api.url + "/"  # type: ignore[index]
        outcome = runner.run(spec, name="calls")
        expected = len(api.transcripts)
    assert outcome.exit_code == 0, outcome.error
    assert duckdb_query(db, "SELECT count(*), count(DISTINCT id) FROM calls.transcripts") == [
        (expected, expected)
    ]


def test_oauth2_refresh_auth_rotates_the_token_of_a_rest_api_connection(
    runner: Runner, tmp_path: Path
) -> None:
    for key, value in (
        ("client_id", CLIENT_ID),
        ("client_secret", CLIENT_SECRET),
        ("refresh_token", INITIAL_REFRESH_TOKEN),
    ):
        runner.secret("books-oauth", key, value)
    db = tmp_path / "w.duckdb"
    with serve(XeroApi(rows=12)) as api:
        tenant = {"Xero-tenant-id": api.tenant_id}
        spec = {
            "type": "rest_api",
            "schemaName": "books",
            "source": {
                "restApi": {
                    "baseUrl": f"{api.url}/api.xro/2.0/",
                    "auth": {
                        "type": "oauth2_refresh",
                        "oauth2": {
                            "secretName": "books-oauth",
                            "tokenUrl": f"{api.url}/connect/token",
                        },
                    },
                    "resourceDefaults": {"endpoint": {"headers": tenant}},
                    "resources": [
                        {
                            "name": "contacts",
                            "primary_key": "ContactID",
                            "endpoint": {"path": "Contacts", "data_selector": "Contacts",
                                         "paginator": "single_page"},
                        }
                    ],
                }
            },
            "destination": duckdb_destination(db),
        }  # fmt: skip
        first = runner.run(spec, name="books")
        second = runner.run(spec, name="books")
        assert (api.refreshes, api.refused_refreshes) == (2, 0)
    assert first.exit_code == 0 and second.exit_code == 0, (first.error, second.error)
    stored = (runner.secrets_dir / "books-oauth" / "refresh_token").read_text()
    assert stored == "xero-refresh-2"
    assert duckdb_query(db, "SELECT count(*) FROM books.contacts") == [(24,)]  # appended twice
