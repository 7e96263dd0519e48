"""The HubSpot mock answers like HubSpot CRM v3/v4: bearer auth with HubSpot's error JSON,
``paging.next.after`` lists, search with ``filterGroups`` for incremental loads, batch read,
properties, v4 associations, and the 429 (``RATE_LIMIT``) and 404 (``OBJECT_NOT_FOUND``) bodies."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from datapipelines.mocks import serve
from datapipelines.mocks.hubspot import HubSpotApi

AUTH = {"Authorization": "Bearer hubspot-token"}


@pytest.fixture(scope="module")
def server() -> Iterator[HubSpotApi]:
    mock = HubSpotApi(rows=60)
    with serve(mock):  # one server for the module; tests reset its faults and stats
        yield mock


@pytest.fixture
def api(server: HubSpotApi) -> HubSpotApi:
    server.reset()
    return server


@pytest.fixture
def client(api: HubSpotApi) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api.url, headers=AUTH, timeout=5) as http:
        yield http


def ms(stamp: str) -> int:
    return int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() * 1000)


def walk_list(client: httpx.Client, path: str, limit: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": limit, "properties": "hs_lastmodifieddate"}
    while True:
        page = client.get(path, params=params).json()
        rows += page["results"]
        if "paging" not in page:
            return rows
        assert page["paging"]["next"]["link"].startswith(client.base_url.join(path).__str__())
        params["after"] = page["paging"]["next"]["after"]


def search_all(client: httpx.Client, obj: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    while True:
        page = client.post(f"/crm/v3/objects/{obj}/search", json=body).json()
        rows += page["results"]
        if "paging" not in page:
            assert len(rows) == page["total"]
            return rows
        body = {**body, "after": page["paging"]["next"]["after"]}


def test_auth_refused_and_accepted(api: HubSpotApi) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        refused = httpx.get(f"{api.url}/crm/v3/schemas", headers=headers)
        assert refused.status_code == 401
        body = refused.json()
        assert body["status"] == "error" and body["category"] == "INVALID_AUTHENTICATION"
        assert body["message"].startswith("Authentication credentials not found.")
        assert body["correlationId"]
    assert httpx.get(f"{api.url}/crm/v3/schemas", headers=AUTH).json() == {"results": []}


def test_full_pagination_matches_expected_counts(api: HubSpotApi, client: httpx.Client) -> None:
    expected = api.expected_counts()
    got = {"owners": len(walk_list(client, "/crm/v3/owners", 2))}
    for obj in api.objects:
        rows = walk_list(client, f"/crm/v3/objects/{obj}", 25)
        assert len({r["id"] for r in rows}) == len(rows)
        assert all("hs_lastmodifieddate" in r["properties"] for r in rows)
        got[obj] = len(rows)
    assert got == {k: v for k, v in expected.items() if k in got}
    for obj in ("deals", "tickets"):
        pipelines = client.get(f"/crm/v3/pipelines/{obj}").json()["results"]
        assert len(pipelines) == expected[f"{obj[:-1]}_pipelines"] and pipelines[0]["stages"]
    assert client.get("/crm/v3/pipelines/contacts").status_code == 400
    capped = client.get("/crm/v3/objects/contacts", params={"limit": 500}).json()
    assert len(capped["results"]) == min(expected["contacts"], 100)  # limit caps at 100


def test_search_returns_only_touched_records(api: HubSpotApi, client: httpx.Client) -> None:
    cursor = max(ms(r["properties"]["hs_lastmodifieddate"]) for r in api.objects["deals"])
    touched = api.touch(5, "deals")
    flt = {"propertyName": "hs_lastmodifieddate", "operator": "GT", "value": str(cursor)}
    body = {"limit": 2, "properties": ["hs_lastmodifieddate"], "filterGroups": [{"filters": [flt]}]}
    found = search_all(client, "deals", body)
    assert sorted(r["id"] for r in found) == sorted(touched)
    assert all(ms(r["properties"]["hs_lastmodifieddate"]) > cursor for r in found)
    gte = {**flt, "operator": "GTE", "value": str(cursor)}  # GTE keeps the record at the cursor
    assert len(search_all(client, "deals", {"filterGroups": [{"filters": [gte]}]})) == 6
    contacts_cursor = max(ms(r["properties"]["lastmodifieddate"]) for r in api.objects["contacts"])
    changed = api.touch(3)
    flt = {"propertyName": "lastmodifieddate", "operator": "GTE", "value": str(contacts_cursor + 1)}
    found = search_all(client, "contacts", {"filterGroups": [{"filters": [flt]}]})
    assert sorted(r["id"] for r in found) == sorted(changed)
    assert set(found[0]["properties"]) >= {"email", "lastmodifieddate", "hs_object_id"}


def test_properties_batch_read_and_associations(api: HubSpotApi, client: httpx.Client) -> None:
    names = {p["name"] for p in client.get("/crm/v3/properties/deals").json()["results"]}
    assert {"dealname", "amount", "hs_lastmodifieddate", "createdate"} <= names
    deal = api.objects["deals"][0]["id"]
    read = client.post(
        "/crm/v3/objects/deals/batch/read",
        json={"properties": sorted(names), "inputs": [{"id": deal}, {"id": "1"}]},
    )
    assert read.status_code == 207
    assert read.json()["results"][0]["properties"]["dealname"] == "Deal 0"
    assert read.json()["errors"][0]["context"] == {"ids": ["1"]}
    links = client.get(f"/crm/v4/objects/deals/{deal}/associations/line_items").json()
    assert [x["associationTypes"][0]["typeId"] for x in links["results"]] == [19, 19]
    item = links["results"][0]["toObjectId"]
    back = client.get(f"/crm/v4/objects/line_items/{item}/associations/deals").json()
    assert back["results"][0]["toObjectId"] == int(deal)


def test_rate_limit_and_error_shapes(api: HubSpotApi, client: httpx.Client) -> None:
    api.inject(429, times=1, retry_after=2)
    limited = client.get("/crm/v3/objects/contacts")
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "2"
    assert limited.headers["x-hubspot-ratelimit-remaining"] == "0"
    body = limited.json()
    assert (body["errorType"], body["policyName"]) == ("RATE_LIMIT", "TEN_SECONDLY_ROLLING")
    missing = client.get("/crm/v3/objects/contacts/42")
    assert missing.status_code == 404
    assert missing.json()["category"] == "OBJECT_NOT_FOUND"
    bad = client.post("/crm/v3/objects/contacts/search", json={"limit": 201})
    assert (bad.status_code, bad.json()["category"]) == (400, "VALIDATION_ERROR")
