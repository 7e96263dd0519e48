"""The Wassenger mock answers as Wassenger publishes: ``Token`` header (or Bearer), bare JSON
arrays paged by ``page`` (from 0) and ``size``, per-device chat endpoints, ``after`` for new
messages, and accounts without some endpoints (404) or without access to them (403)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from datapipelines.mocks import serve
from datapipelines.mocks.wassenger import WassengerApi

HEADERS = {"Token": "wassenger-token", "Connection": "close"}  # Connection: see test_pandadoc


@pytest.fixture(scope="module")
def served() -> Iterator[WassengerApi]:
    """One server per module: stopping one waits out serve_forever's 0.5 s poll."""
    mock = WassengerApi(rows=230, devices=2, missing={"labels"}, forbidden={"campaigns"})
    with serve(mock):
        yield mock


@pytest.fixture
def api(served: WassengerApi) -> WassengerApi:
    served.reset()
    return served


@pytest.fixture
def client(api: WassengerApi) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{api.url}/v1", headers=HEADERS, timeout=5) as http:
        yield http


def pages(client: httpx.Client, path: str, **params: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for page in range(100):
        response = client.get(path, params={"page": page, "size": 100, **params})
        assert response.status_code == 200, response.text
        batch = response.json()
        assert isinstance(batch, list)
        rows += batch
        if len(batch) < 100:
            return rows
    raise AssertionError("paging never ended")


def test_auth_takes_the_token_header_or_bearer(api: WassengerApi) -> None:
    url = f"{api.url}/v1/devices"
    close = {"Connection": "close"}
    for headers in ({}, {"Token": "wrong"}, {"Authorization": "Bearer wrong"}):
        refused = httpx.get(url, headers=headers | close)
        assert refused.status_code == 401
        assert refused.json()["status"] == 401 and refused.json()["message"]
    assert httpx.get(url, headers=HEADERS).status_code == 200
    bearer = httpx.get(url, headers={"Authorization": "Bearer wassenger-token"} | close)
    assert bearer.status_code == 200


def test_a_full_sync_loads_the_expected_counts(api: WassengerApi, client: httpx.Client) -> None:
    devices = pages(client, "/devices")
    assert all(d["status"] == "ready" for d in devices)
    counts = {"devices": len(devices), "messages": len(pages(client, "/messages"))}
    for name in ("chats", "contacts", "groups"):
        counts[name] = sum(len(pages(client, f"/chat/{d['id']}/{name}")) for d in devices)
    assert counts == api.expected_counts()
    assert counts["messages"] == 230  # three pages of 100, the last one short


def test_page_zero_is_the_first_and_size_defaults_to_20(client: httpx.Client) -> None:
    first = client.get("/messages").json()
    assert len(first) == 20
    assert client.get("/messages", params={"page": 0, "size": 20}).json() == first
    assert client.get("/messages", params={"page": 1, "size": 20}).json() != first
    assert client.get("/messages", params={"size": 101}).status_code == 400


def test_after_returns_only_new_messages(api: WassengerApi, client: httpx.Client) -> None:
    cursor = max(m["createdAt"] for m in pages(client, "/messages"))
    assert pages(client, "/messages", after=cursor) == []
    new = api.touch(4)
    assert sorted(m["id"] for m in pages(client, "/messages", after=cursor)) == sorted(new)


def test_missing_and_forbidden_endpoints(api: WassengerApi, client: httpx.Client) -> None:
    device = api.devices[0]["id"]
    missing = client.get(f"/devices/{device}/labels", params={"page": 1, "limit": 1})
    assert (missing.status_code, missing.json()["status"]) == (404, 404)
    forbidden = client.get("/campaigns")
    assert (forbidden.status_code, forbidden.json()["status"]) == (403, 403)
    assert client.get(f"/devices/{device}/departments").status_code == 200
    assert client.get("/chat/default/chats").status_code == 404  # no device called "default"
    by_alias = client.get(f"/chat/{api.devices[1]['alias']}/chats")
    assert by_alias.status_code == 200
    assert api.expected_counts(["labels", "campaigns", "team"]) == {
        "labels": 0,
        "campaigns": 0,
        "team": len(client.get("/team").json()),
    }


def test_an_injected_429(api: WassengerApi, client: httpx.Client) -> None:
    api.inject(429, times=1, retry_after=1.5)
    limited = client.get("/devices")
    assert (limited.status_code, limited.headers["Retry-After"]) == (429, "1.5")
    assert limited.json() == {"status": 429, "message": "rate limit exceeded"}
    assert client.get("/devices").status_code == 200
