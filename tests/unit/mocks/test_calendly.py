"""The Calendly mock answers like Calendly v2: bearer auth, ``/users/me`` giving the organization,
``collection`` + ``pagination`` (``next_page`` URLs and ``next_page_token``), ``min_start_time``
windows for incremental loads, invitees per event, rate-limit headers and ``{title, message}``
errors."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from datapipelines.mocks import serve
from datapipelines.mocks.calendly import CalendlyApi

AUTH = {"Authorization": "Bearer calendly-token"}


@pytest.fixture(scope="module")
def server() -> Iterator[CalendlyApi]:
    mock = CalendlyApi(rows=60)
    with serve(mock):  # one server for the module; tests reset its faults and stats
        yield mock


@pytest.fixture
def api(server: CalendlyApi) -> CalendlyApi:
    server.reset()
    return server


@pytest.fixture
def client(api: CalendlyApi) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api.url, headers=AUTH, timeout=5) as http:
        yield http


def collect(client: httpx.Client, url: str, **params: Any) -> list[dict[str, Any]]:
    """Follow ``pagination.next_page`` (a full URL) to the end, as the connector does."""
    rows: list[dict[str, Any]] = []
    page = client.get(url, params=params).json()
    while True:
        rows += page["collection"]
        assert page["pagination"]["count"] == len(page["collection"])
        if page["pagination"]["next_page"] is None:
            assert page["pagination"]["next_page_token"] is None
            return rows
        page = client.get(page["pagination"]["next_page"]).json()


def test_auth_refused_and_accepted(api: CalendlyApi) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}):
        refused = httpx.get(f"{api.url}/users/me", headers=headers)
        assert refused.status_code == 401
        assert refused.json() == {
            "title": "Unauthenticated",
            "message": "The access token is invalid",
        }
    me = httpx.get(f"{api.url}/users/me", headers=AUTH)
    assert me.status_code == 200
    assert me.json()["resource"]["current_organization"].startswith(f"{api.url}/organizations/")
    assert me.headers["x-ratelimit-limit"] == "500" and me.headers["x-ratelimit-reset"] == "60"


def test_full_sync_matches_expected_counts(api: CalendlyApi, client: httpx.Client) -> None:
    me = client.get("/users/me").json()["resource"]
    org_uri = me["current_organization"]
    org = client.get(org_uri).json()["resource"]
    memberships = collect(client, "/organization_memberships", organization=org_uri, count=2)
    users = [client.get(m["user"]["uri"]).json()["resource"] for m in memberships]
    types = {e["uri"]: e for e in collect(client, "/event_types", organization=org_uri)}
    for user in users:
        types.update({e["uri"]: e for e in collect(client, "/event_types", user=user["uri"])})
    events: list[dict[str, Any]] = []
    for status in ("active", "canceled"):
        events += collect(
            client, "/scheduled_events", organization=org_uri, count=25, status=status,
            min_start_time="2010-01-01T00:00:00Z", sort="start_time:asc",
        )  # fmt: skip
    with ThreadPoolExecutor(8) as pool:  # the connector fetches invitees 8 at a time
        pages = pool.map(lambda e: collect(client, f"{e['uri']}/invitees", count=100), events)
        invitees = [i for page in pages for i in page]
    got = {
        "organizations": len([org]),
        "organization_memberships": len(memberships),
        "users": len(users),
        "event_types": len(types),
        "scheduled_events": len({e["uri"] for e in events}),
        "scheduled_event_invitees": len({i["uri"] for i in invitees}),
    }
    assert got == api.expected_counts()
    assert all("cancellation" in e for e in events if e["status"] == "canceled")


def test_min_start_time_returns_only_new_events(api: CalendlyApi, client: httpx.Client) -> None:
    org_uri = client.get("/users/me").json()["resource"]["current_organization"]
    cursor = max(e["start_time"] for e in api.events)
    booked = api.touch(3)
    window = {"organization": org_uri, "min_start_time": cursor, "sort": "start_time:asc"}
    found = collect(client, "/scheduled_events", **window)
    assert found[0]["start_time"] == cursor  # min_start_time is inclusive
    new = [e for e in found if e["start_time"] > cursor]
    assert [e["uri"].rsplit("/", 1)[1] for e in new] == [u.rsplit("/", 1)[1] for u in booked]
    assert collect(client, f"{new[0]['uri']}/invitees")[0]["event"] == new[0]["uri"]
    upto = {**window, "max_start_time": cursor}  # max_start_time is exclusive
    assert collect(client, "/scheduled_events", **upto) == []


def test_rate_limit_and_error_shapes(api: CalendlyApi, client: httpx.Client) -> None:
    api.inject(429, times=1, retry_after=5)
    limited = client.get("/users/me")
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "5"
    assert limited.headers["x-ratelimit-remaining"] == "0"
    assert limited.json()["title"] == "Too Many Requests"
    missing = client.get("/scheduled_events/00000000-0000-0000-0000-000000000000")
    assert missing.status_code == 404
    assert missing.json() == {
        "title": "Resource Not Found",
        "message": "The server could not find the requested resource.",
    }
    too_many = client.get("/scheduled_events", params={"count": 101})
    assert too_many.status_code == 400
    assert too_many.json()["details"][0]["parameter"] == "count"
    other_org = client.get("/event_types", params={"organization": f"{api.url}/organizations/x"})
    assert other_org.status_code == 403 and other_org.json()["title"] == "Permission Denied"
