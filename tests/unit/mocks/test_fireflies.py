"""The Fireflies mock answers GraphQL as Fireflies documents: Bearer API key, ``transcripts``
paged by ``skip``/``limit`` (<= 50) and bounded by ``fromDate``, nested selections, and errors
as ``{"errors": [{"message", "code", "extensions": {"code", "status"}}]}`` (429
``too_many_requests`` with ``retryAfter``)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from datapipelines.mocks import serve
from datapipelines.mocks.fireflies import FirefliesApi

HEADERS = {"Authorization": "Bearer fireflies-key", "Connection": "close"}  # see test_pandadoc
TRANSCRIPTS = """
query Transcripts($limit: Int, $skip: Int, $fromDate: DateTime, $toDate: DateTime) {
  transcripts(limit: $limit, skip: $skip, fromDate: $fromDate, toDate: $toDate) {
    id title date duration transcript_url meeting_link calendar_id host_email participants
    summary { overview action_items outline keywords }
  }
}"""


@pytest.fixture(scope="module")
def served() -> Iterator[FirefliesApi]:
    """One server per module: stopping one waits out serve_forever's 0.5 s poll."""
    mock = FirefliesApi(rows=120)
    with serve(mock):
        yield mock


@pytest.fixture
def api(served: FirefliesApi) -> FirefliesApi:
    served.reset()
    return served


def gql(
    api: FirefliesApi, query: str, headers: dict[str, str] = HEADERS, **variables: Any
) -> httpx.Response:
    return httpx.post(
        f"{api.url}/graphql", json={"query": query, "variables": variables}, headers=headers
    )


def all_transcripts(api: FirefliesApi, **variables: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    while True:
        response = gql(api, TRANSCRIPTS, limit=50, skip=len(rows), **variables)
        assert response.status_code == 200, response.text
        page = response.json()["data"]["transcripts"]
        rows += page
        if len(page) < 50:
            return rows


def test_auth_is_refused_without_the_key_and_accepted_with_it(api: FirefliesApi) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        refused = gql(api, "{ user { email } }", headers=headers | {"Connection": "close"})
        assert refused.status_code == 401
        error = refused.json()["errors"][0]
        assert error["code"] == error["extensions"]["code"] == "auth_failed"
        assert error["extensions"]["status"] == 401
    me = gql(api, "query { user { user_id email name } }").json()
    assert me == {
        "data": {
            "user": {
                "user_id": api.users[0]["user_id"],
                "email": "user0@example.com",
                "name": "User 0",
            }
        }
    }


def test_a_full_sync_loads_the_expected_counts(api: FirefliesApi) -> None:
    rows = all_transcripts(api, toDate=datetime.now(UTC).isoformat())
    assert len({t["id"] for t in rows}) == len(rows)
    assert [t["date"] for t in rows] == sorted((t["date"] for t in rows), reverse=True)
    expected = api.expected_counts(["transcripts", "transcript_participants"])
    assert {
        "transcripts": len(rows),
        "transcript_participants": sum(len(t["participants"]) for t in rows),
    } == expected
    assert set(rows[0]["summary"]) == {"overview", "action_items", "outline", "keywords"}
    assert isinstance(rows[0]["date"], float)  # epoch milliseconds, not ISO


def test_limit_is_at_most_50(api: FirefliesApi) -> None:
    response = gql(api, "{ transcripts(limit: 51) { id } }")
    error = response.json()["errors"][0]
    assert (response.status_code, error["code"]) == (400, "invalid_arguments")
    assert error["extensions"]["metadata"]["fields"][0]["name"] == "limit"


def test_from_date_returns_only_new_meetings(api: FirefliesApi) -> None:
    latest = max(t["date"] for t in all_transcripts(api))
    cursor = datetime.fromtimestamp(latest / 1000, UTC) + timedelta(milliseconds=1)
    assert all_transcripts(api, fromDate=cursor.isoformat()) == []
    new = api.touch(3)
    assert sorted(t["id"] for t in all_transcripts(api, fromDate=cursor.isoformat())) == sorted(new)
    bad = gql(api, TRANSCRIPTS, fromDate="yesterday").json()["errors"][0]
    assert bad["code"] == "invalid_arguments"


def test_one_transcript_with_nested_sentences_and_aliases(api: FirefliesApi) -> None:
    tid = api.transcripts[5]["id"]
    query = """query One($id: String!) { t: transcript(id: $id) { id
        sentences { index speaker_name text start_time } speakers { id name }
        meeting_attendees { email } } }"""
    one = gql(api, query, id=tid).json()["data"]["t"]
    assert one["id"] == tid and len(one["sentences"]) == len(api.transcripts[5]["sentences"])
    assert set(one["sentences"][0]) == {"index", "speaker_name", "text", "start_time"}
    missing = gql(api, query, id="nope").json()["errors"][0]
    assert (missing["code"], missing["extensions"]["metadata"]) == (
        "object_not_found",
        {"objectType": "Transcript"},
    )
    users = gql(api, "{ users { user_id email is_admin } }").json()["data"]["users"]
    assert len(users) == api.expected_counts(["users"])["users"]


def test_unknown_fields_fail_validation(api: FirefliesApi) -> None:
    response = gql(api, "{ transcripts { id nonsense } }")
    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert 'Cannot query field "nonsense" on type "Transcript"' in error["message"]


def test_an_injected_429_is_too_many_requests(api: FirefliesApi) -> None:
    api.inject(429, times=1, retry_after=2)
    limited = gql(api, TRANSCRIPTS, limit=1)
    assert (limited.status_code, limited.headers["Retry-After"]) == (429, "2")
    error = limited.json()["errors"][0]
    assert error["code"] == error["extensions"]["code"] == "too_many_requests"
    assert error["extensions"]["status"] == 429 and error["extensions"]["metadata"]["retryAfter"]
    assert gql(api, TRANSCRIPTS, limit=1).status_code == 200


def test_errors_can_come_with_http_200(api: FirefliesApi, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(api, "http_errors", False)
    response = gql(api, '{ transcript(id: "nope") { id } }')
    assert response.status_code == 200
    assert (
        response.json()["data"] is None
        and response.json()["errors"][0]["code"] == "object_not_found"
    )
