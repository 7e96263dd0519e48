"""The Intercom mock answers like Intercom 2.x: bearer auth and ``Intercom-Version``, cursor pages
(``pages.next.starting_after``), the company scroll, conversations with their parts, ``updated_at``
searches for incremental loads, and the ``error.list`` bodies (401, 404, 429)."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from datapipelines.mocks import serve
from datapipelines.mocks.intercom import IntercomApi

AUTH = {"Authorization": "Bearer intercom-token", "Intercom-Version": "2.14"}


@pytest.fixture(scope="module")
def server() -> Iterator[IntercomApi]:
    mock = IntercomApi(rows=60)
    with serve(mock):  # one server for the module; tests reset its faults and stats
        yield mock


@pytest.fixture
def api(server: IntercomApi) -> IntercomApi:
    server.reset()
    return server


@pytest.fixture
def client(api: IntercomApi) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api.url, headers=AUTH, timeout=5) as http:
        yield http


def walk(client: httpx.Client, path: str, key: str, per_page: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    params: dict[str, Any] = {"per_page": per_page}
    while True:
        page = client.get(path, params=params).json()
        rows += page[key]
        if "next" not in page["pages"]:
            assert len(rows) == page["total_count"]
            return rows
        params["starting_after"] = page["pages"]["next"]["starting_after"]


def search(client: httpx.Client, path: str, key: str, since: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    body: dict[str, Any] = {
        "query": {"field": "updated_at", "operator": ">", "value": since},
        "pagination": {"per_page": 2},
    }
    while True:
        page = client.post(path, json=body).json()
        rows += page[key]
        if "next" not in page["pages"]:
            return rows
        body["pagination"]["starting_after"] = page["pages"]["next"]["starting_after"]


def test_auth_and_version(api: IntercomApi) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}):
        refused = httpx.get(f"{api.url}/me", headers=headers)
        assert refused.status_code == 401
        body = refused.json()
        assert body["type"] == "error.list" and body["request_id"]
        assert body["errors"] == [{"code": "unauthorized", "message": "Access Token Invalid"}]
    ok = httpx.get(f"{api.url}/me", headers=AUTH)
    assert ok.status_code == 200 and ok.json()["type"] == "admin"
    assert ok.headers["x-ratelimit-limit"] == "10000"
    bad = httpx.get(f"{api.url}/me", headers={**AUTH, "Intercom-Version": "9.9"})
    assert bad.status_code == 400
    assert bad.json()["errors"][0]["code"] == "intercom_version_invalid"
    assert api.versions == ["2.14"]


def test_full_sync_matches_expected_counts(api: IntercomApi, client: httpx.Client) -> None:
    contacts = walk(client, "/contacts", "data", 25)
    conversations = walk(client, "/conversations", "conversations", 20)
    with ThreadPoolExecutor(4) as pool:  # the connector re-fetches 4 at a time
        full = list(
            pool.map(lambda c: client.get(f"/conversations/{c['id']}").json(), conversations)
        )
    assert {f["conversation_parts"]["type"] for f in full} == {"conversation_part.list"}
    parts = [p for f in full for p in f["conversation_parts"]["conversation_parts"]]
    companies, scroll_param = [], None
    while True:
        page = client.get(
            "/companies/scroll", params={"scroll_param": scroll_param} if scroll_param else {}
        ).json()
        if not page["data"]:
            break
        companies += page["data"]
        scroll_param = page["scroll_param"]
    tickets = search(client, "/tickets/search", "tickets", 0)
    got = {
        "contacts": len({c["id"] for c in contacts}),
        "companies": len({c["id"] for c in companies}),
        "conversations": len(conversations),
        "conversation_parts": len({p["id"] for p in parts}),
        "tickets": len(tickets),
    }
    assert got == api.expected_counts()
    paged = client.get("/companies", params={"per_page": 5}).json()
    assert paged["pages"]["total_pages"] == -(-got["companies"] // 5)


def test_scroll_is_one_per_app(api: IntercomApi, client: httpx.Client) -> None:
    first = client.get("/companies/scroll").json()
    second = client.get("/companies/scroll")
    assert second.status_code == 400
    assert second.json()["errors"][0]["code"] == "scroll_exists"
    stale = client.get("/companies/scroll", params={"scroll_param": "nope"})
    assert (stale.status_code, stale.json()["errors"][0]["code"]) == (404, "not_found")
    while first["data"]:
        first = client.get(
            "/companies/scroll", params={"scroll_param": first["scroll_param"]}
        ).json()
    assert client.get("/companies/scroll").status_code == 200  # the finished scroll expired


def test_search_returns_only_touched_records(api: IntercomApi, client: httpx.Client) -> None:
    since = max(c["updated_at"] for c in api.contacts)
    touched = api.touch(4)
    found = search(client, "/contacts/search", "data", since)
    assert sorted(c["id"] for c in found) == sorted(touched)
    since = max(c["updated_at"] for c in api.conversations)
    changed = api.touch(3, "conversations")
    found = search(client, "/conversations/search", "conversations", since)
    assert sorted(c["id"] for c in found) == sorted(changed)
    parts = client.get(f"/conversations/{changed[0]}").json()["conversation_parts"]
    newest = parts["conversation_parts"][-1]
    assert newest["created_at"] > since and newest["author"]["type"] == "admin"


def test_rate_limit_and_not_found(api: IntercomApi, client: httpx.Client) -> None:
    api.inject(429, times=1, retry_after=1)
    limited = client.get("/contacts")
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "1"
    assert limited.headers["x-ratelimit-remaining"] == "0"
    assert int(limited.headers["x-ratelimit-reset"]) > 0
    assert limited.json()["errors"][0]["code"] == "rate_limit_exceeded"
    missing = client.get("/contacts/000000000000000000000000")
    assert missing.status_code == 404
    assert missing.json()["errors"][0]["code"] == "not_found"
    bad = client.post("/contacts/search", json={"query": {"field": "email", "operator": "LIKE"}})
    assert bad.status_code == 400 and bad.json()["type"] == "error.list"
