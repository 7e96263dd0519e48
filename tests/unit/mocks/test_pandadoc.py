"""The PandaDoc mock answers as PandaDoc documents: API-Key auth, page/count paging that ends
on an empty ``results``, ``modified_from`` for incremental syncs, per-document details and
the ``{"type","detail"}`` error bodies (429 ``throttled``)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from datapipelines.mocks import serve
from datapipelines.mocks.pandadoc import PandaDocApi

AUTH = {"Authorization": "API-Key pandadoc-key"}
#: one connection per request: the framework's keep-alive answers wait ~40 ms on Nagle's
#: algorithm (its handler writes headers and body separately), a fresh connection does not
CLOSE = {"Connection": "close"}


@pytest.fixture(scope="module")
def served() -> Iterator[PandaDocApi]:
    """One server per module: stopping one waits out serve_forever's 0.5 s poll."""
    mock = PandaDocApi(rows=130)
    with serve(mock):
        yield mock


@pytest.fixture
def api(served: PandaDocApi) -> PandaDocApi:
    served.reset()  # faults and stats; the tests read cursors from the current data
    return served


@pytest.fixture
def client(api: PandaDocApi) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api.url, headers=AUTH | CLOSE, timeout=5) as http:
        yield http


def pages(client: httpx.Client, path: str, **params: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for page in range(1, 100):
        response = client.get(path, params={"count": 100, "page": page, **params})
        assert response.status_code == 200, response.text
        batch = response.json()["results"]
        if not batch:
            return rows
        rows += batch
    raise AssertionError("paging never ended")


def test_auth_is_refused_without_the_api_key_and_accepted_with_it(api: PandaDocApi) -> None:
    for headers in (
        {},
        {"Authorization": "API-Key wrong"},
        {"Authorization": "Bearer pandadoc-key"},
    ):
        response = httpx.get(f"{api.url}/public/v1/documents", headers=headers)
        assert response.status_code == 401
        assert response.json() == {
            "type": "authentication_error",
            "detail": "Authentication credentials were not provided.",
        }
    assert httpx.get(f"{api.url}/public/v1/documents", headers=AUTH).status_code == 200


def test_a_full_sync_loads_the_expected_counts(api: PandaDocApi, client: httpx.Client) -> None:
    documents = pages(client, "/public/v1/documents", order_by="date_modified")
    assert len({d["id"] for d in documents}) == len(documents)
    assert set(documents[0]) == {
        "id", "name", "status", "date_created", "date_modified", "expiration_date", "version",
    }  # fmt: skip
    details = [client.get(f"/public/v1/documents/{d['id']}/details").json() for d in documents]
    assert {
        "documents": len(documents),
        "recipients": sum(len(d["recipients"]) for d in details),
        "tokens": sum(len(d["tokens"]) for d in details),
    } == api.expected_counts()
    first = details[0]
    assert {"recipients", "tokens", "fields", "pricing", "grand_total", "template"} <= set(first)
    assert {"id", "email", "recipient_type", "has_completed", "contact_id"} <= set(
        first["recipients"][0]
    )
    templates = pages(client, "/public/v1/templates")
    contacts = client.get("/public/v1/contacts").json()["results"]
    assert {"templates": len(templates), "contacts": len(contacts)} == api.expected_counts(
        ["templates", "contacts"]
    )


def test_the_default_page_is_50_and_count_is_capped_at_100(client: httpx.Client) -> None:
    assert len(client.get("/public/v1/documents").json()["results"]) == 50
    too_many = client.get("/public/v1/documents", params={"count": 101})
    assert too_many.status_code == 400
    assert too_many.json()["type"] == "request_error"


def test_modified_from_returns_only_the_touched_documents(
    api: PandaDocApi, client: httpx.Client
) -> None:
    first = pages(client, "/public/v1/documents", order_by="date_modified")
    latest = max(datetime.fromisoformat(d["date_modified"]) for d in first)
    cursor = (latest + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert pages(client, "/public/v1/documents", modified_from=cursor) == []
    touched = api.touch(3)
    changed = pages(client, "/public/v1/documents", modified_from=cursor, order_by="date_modified")
    assert sorted(d["id"] for d in changed) == sorted(touched)
    assert all(d["version"] == "3" for d in changed)


def test_details_of_an_unknown_document_is_404(client: httpx.Client) -> None:
    response = client.get("/public/v1/documents/nope/details")
    assert response.status_code == 404
    assert response.json() == {"type": "request_error", "detail": "Not found"}


def test_an_injected_429_is_pandadocs_throttled_body(
    api: PandaDocApi, client: httpx.Client
) -> None:
    api.inject(429, times=1, retry_after=2)
    response = client.get("/public/v1/documents")
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "2"
    assert response.json() == {"type": "throttled", "detail": "Request was throttled."}
    assert client.get("/public/v1/documents").status_code == 200
