"""The Trello mock answers like Trello: query-string key/token auth with text/plain 401s, bare
arrays paged backwards with ``before``/``limit``, ``since`` on actions, and its 429/404 shapes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from datapipelines.mocks import serve
from datapipelines.mocks.trello import TrelloApi

AUTH = {"key": "trello-key", "token": "trello-token"}


@pytest.fixture(scope="module")
def server() -> Iterator[TrelloApi]:
    mock = TrelloApi(rows=120)
    with serve(mock):  # one server for the module; tests reset its faults and stats
        yield mock


@pytest.fixture
def api(server: TrelloApi) -> TrelloApi:
    server.reset()
    return server


@pytest.fixture
def client(api: TrelloApi) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{api.url}/1", params=AUTH, timeout=5) as http:
        yield http


def paged(client: httpx.Client, path: str, **params: Any) -> list[dict[str, Any]]:
    """Page backwards with ``before=<last id>`` until a short page, as the connector does."""
    rows: list[dict[str, Any]] = []
    before: str | None = None
    while True:
        query = {**params, "limit": 25, **({"before": before} if before else {})}
        page = client.get(path, params=query).json()
        rows += page
        if len(page) < 25:
            return rows
        before = page[-1]["id"]


def test_auth_refused_and_accepted(api: TrelloApi) -> None:
    missing = httpx.get(f"{api.url}/1/members/me")
    assert (missing.status_code, missing.text) == (401, "invalid key")
    assert missing.headers["content-type"].startswith("text/plain")
    bad_token = httpx.get(f"{api.url}/1/members/me", params={**AUTH, "token": "nope"})
    assert (bad_token.status_code, bad_token.text) == (401, "invalid token")
    ok = httpx.get(f"{api.url}/1/members/me", params={**AUTH, "fields": "username,fullName"})
    assert ok.status_code == 200
    assert set(ok.json()) == {"id", "username", "fullName"}
    oauth = 'OAuth oauth_consumer_key="trello-key", oauth_token="trello-token"'
    assert httpx.get(f"{api.url}/1/members/me", headers={"Authorization": oauth}).status_code == 200


def test_full_sync_matches_expected_counts(api: TrelloApi, client: httpx.Client) -> None:
    boards = client.get("/members/me/boards", params={"fields": "all"}).json()
    orgs = client.get("/members/me/organizations", params={"fields": "all"}).json()
    lists, members, checklists, cards = [], {}, [], []
    for board in boards:
        lists += client.get(
            f"/boards/{board['id']}/lists", params={"fields": "id,name,closed,idBoard,pos"}
        ).json()
        for m in client.get(f"/boards/{board['id']}/members", params={"fields": "all"}).json():
            members[m["id"]] = m  # merge on id
        checklists += paged(client, f"/boards/{board['id']}/checklists", fields="all")
        rich = {"fields": "all", "attachments": "true", "members": "true", "stickers": "true"}
        cards += client.get(f"/boards/{board['id']}/cards/all", params=rich).json()
    got = {
        "boards": len(boards),
        "organizations": len(orgs),
        "lists": len(lists),
        "members": len(members),
        "checklists": len({c["id"] for c in checklists}),
        "cards": len({c["id"] for c in cards}),
    }
    assert got == api.expected_counts()
    assert len(checklists) == got["checklists"]  # paging neither skips nor repeats
    assert all("attachments" in c and "members" in c for c in cards)
    assert all(not x["closed"] for x in lists)  # the default filter is open


def test_actions_page_backwards_newest_first(api: TrelloApi, client: httpx.Client) -> None:
    board = api.boards[0]["id"]
    actions = paged(client, f"/boards/{board}/actions", filter="createCard,commentCard")
    ours = [a for a in api.actions if a["data"]["board"]["id"] == board]
    assert len(actions) == sum(a["type"] != "createList" for a in ours) > 25
    dates = [a["date"] for a in actions]
    assert dates == sorted(dates, reverse=True)
    assert client.get(f"/boards/{board}/actions", params={"limit": 1001}).status_code == 400


def test_since_returns_only_touched_cards(api: TrelloApi, client: httpx.Client) -> None:
    cursor = max(a["date"] for a in api.actions)
    touched = api.touch(4)
    changed: set[str] = set()
    for board in client.get("/members/me/boards").json():
        query = {"filter": "createCard,updateCard,commentCard", "since": cursor, "limit": 1000}
        for action in client.get(f"/boards/{board['id']}/actions", params=query).json():
            assert action["type"] == "updateCard"
            changed.add(action["data"]["card"]["id"])
    assert changed == set(touched)
    card = client.get(f"/cards/{touched[0]}").json()
    assert card["dateLastActivity"] > cursor


def test_rate_limit_and_error_shapes(api: TrelloApi, client: httpx.Client) -> None:
    api.inject(429, times=1, retry_after=3)
    limited = client.get("/members/me")
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "3"
    assert limited.json() == {"error": "API_TOKEN_LIMIT_EXCEEDED", "message": "Rate limit exceeded"}
    assert client.get("/members/me").status_code == 200
    missing = client.get("/boards/" + "0" * 24)
    assert (missing.status_code, missing.text) == (404, "The requested resource was not found.")
    invalid = client.get("/cards/not-an-id")
    assert (invalid.status_code, invalid.text) == (400, "invalid id")
