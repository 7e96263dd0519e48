"""The Xero mock answers as Xero documents: OAuth 2.0 with rotating refresh tokens (a used one
is ``invalid_grant``), tenants from ``/connections``, the Accounting envelope with ``page=N``
paging of 100, ``If-Modified-Since`` for incremental syncs, and 401/403/429 as Xero sends them
(429 with ``Retry-After`` and ``X-Rate-Limit-Problem``)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from datapipelines.mocks import serve
from datapipelines.mocks.xero import COLLECTIONS, XeroApi

BASIC = "Basic " + base64.b64encode(b"xero-client:xero-secret").decode()
#: one connection per request: the framework's keep-alive answers wait ~40 ms on Nagle
CLOSE = {"Connection": "close"}


@pytest.fixture(scope="module")
def served() -> Iterator[XeroApi]:
    """One server per module: stopping one waits out serve_forever's 0.5 s poll."""
    mock = XeroApi(rows=250)
    with serve(mock):
        yield mock


@pytest.fixture
def api(served: XeroApi) -> XeroApi:
    served.reset()
    return served


def refresh(api: XeroApi, token: str, auth: str = BASIC) -> httpx.Response:
    return httpx.post(
        f"{api.url}/connect/token",
        data={"grant_type": "refresh_token", "refresh_token": token},
        headers={"Authorization": auth} | CLOSE,
    )


def client(api: XeroApi, access: str) -> httpx.Client:
    headers = {"Authorization": f"Bearer {access}", "Xero-tenant-id": api.tenant_id}
    return httpx.Client(base_url=f"{api.url}/api.xro/2.0", headers=headers | CLOSE, timeout=5)


def fetch_all(http: httpx.Client, path: str, **headers: str) -> list[dict[str, Any]]:
    key = "Organisations" if path == "Organisation" else path
    if not COLLECTIONS[path][2]:
        return list(http.get(path, headers=headers).json()[key])
    rows: list[dict[str, Any]] = []
    for page in range(1, 50):
        body = http.get(path, params={"page": page}, headers=headers).json()
        if not body[key]:
            return rows
        assert body["pagination"]["page"] == page and len(body[key]) <= 100
        rows += body[key]
    raise AssertionError("paging never ended")


def test_refresh_tokens_rotate_and_a_used_one_is_invalid_grant(api: XeroApi) -> None:
    old, refreshes, refused = api.current_refresh_token, api.refreshes, api.refused_refreshes
    first = refresh(api, old)
    assert first.status_code == 200
    pair = first.json()
    assert pair["refresh_token"] != old == api.previous_refresh_token
    assert pair["expires_in"] == 1800 and pair["token_type"] == "Bearer"
    assert api.current_refresh_token == pair["refresh_token"]
    reused = refresh(api, old)
    assert (reused.status_code, reused.json()) == (400, {"error": "invalid_grant"})
    assert (api.refreshes, api.refused_refreshes) == (refreshes + 1, refused + 1)
    assert refresh(api, pair["refresh_token"]).status_code == 200
    wrong_client = refresh(api, api.current_refresh_token, auth="Basic eDp5")
    assert (wrong_client.status_code, wrong_client.json()) == (400, {"error": "invalid_client"})


def test_the_authorization_code_is_exchanged_once(api: XeroApi) -> None:
    code = {"grant_type": "authorization_code", "code": "xero-code", "redirect_uri": "https://x"}
    headers = {"Authorization": BASIC} | CLOSE
    exchanged = httpx.post(f"{api.url}/connect/token", data=code, headers=headers)
    assert exchanged.json()["refresh_token"] == api.current_refresh_token
    again = httpx.post(f"{api.url}/connect/token", data=code, headers=headers)
    assert (again.status_code, again.json()) == (400, {"error": "invalid_grant"})


def test_grace_reuse_answers_the_current_pair_to_the_previous_token(
    api: XeroApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(api, "grace_reuse", True)
    old = api.current_refresh_token
    pair = refresh(api, old).json()
    again = refresh(api, old).json()
    assert again["refresh_token"] == pair["refresh_token"] == api.current_refresh_token


def test_the_api_needs_the_access_token_and_a_connected_tenant(api: XeroApi) -> None:
    anonymous = httpx.get(f"{api.url}/api.xro/2.0/Invoices", headers=CLOSE)
    assert anonymous.status_code == 401
    assert anonymous.json()["Title"] == "Unauthorized"
    assert anonymous.json()["Detail"] == "AuthenticationUnsuccessful"
    assert "invalid_token" in anonymous.headers["WWW-Authenticate"]
    access = refresh(api, api.current_refresh_token).json()["access_token"]
    connections = httpx.get(
        f"{api.url}/connections", headers={"Authorization": f"Bearer {access}"} | CLOSE
    ).json()
    assert [c["tenantId"] for c in connections] == [api.tenant_id]
    assert connections[0]["tenantType"] == "ORGANISATION"
    no_tenant = httpx.get(
        f"{api.url}/api.xro/2.0/Invoices", headers={"Authorization": f"Bearer {access}"} | CLOSE
    )
    assert (no_tenant.status_code, no_tenant.json()["Title"]) == (403, "Forbidden")
    with client(api, access) as http:
        body = http.get("Invoices", params={"page": 1}).json()
        assert body["Status"] == "OK" and body["DateTimeUTC"].startswith("/Date(")
        assert body["pagination"] == {"page": 1, "pageSize": 100, "pageCount": 3, "itemCount": 250}
        assert body["Invoices"][0]["UpdatedDateUTC"].startswith("/Date(")


def test_a_full_sync_loads_the_expected_counts(api: XeroApi) -> None:
    with client(api, "xero-access-0") as http:
        counts = {spec[0]: len(fetch_all(http, path)) for path, spec in COLLECTIONS.items()}
        assert counts == api.expected_counts()
        assert counts["invoices"] == 250  # three pages of 100
        # Items are unpaged: ``page`` is ignored and every item comes back, without pagination
        items = http.get("Items", params={"page": 2}).json()
        assert "pagination" not in items and len(items["Items"]) == counts["items"]
        # unpaged Invoices: everything, without line items (as Xero documents)
        unpaged = http.get("Invoices").json()["Invoices"]
        assert len(unpaged) == 250 and all(i["LineItems"] == [] for i in unpaged)


def test_if_modified_since_returns_only_the_touched_records(api: XeroApi) -> None:
    since = api.clock.strftime("%Y-%m-%dT%H:%M:%S")
    with client(api, "xero-access-0") as http:
        assert fetch_all(http, "Invoices", **{"If-Modified-Since": since}) == []
        touched = api.touch(5, "invoices")
        changed = fetch_all(http, "Invoices", **{"If-Modified-Since": since})
        assert sorted(i["InvoiceID"] for i in changed) == sorted(touched)
        assert fetch_all(http, "Contacts", **{"If-Modified-Since": since}) == []


def test_an_injected_429_names_the_limit_and_the_wait(api: XeroApi) -> None:
    api.inject(429, times=1, retry_after=3)
    with client(api, "xero-access-0") as http:
        limited = http.get("Contacts", params={"page": 1})
        assert limited.status_code == 429
        assert limited.headers["Retry-After"] == "3"
        assert limited.headers["X-Rate-Limit-Problem"] == "minute"
        assert limited.json()["Status"] == 429
        ok = http.get("Contacts", params={"page": 1})
        assert ok.status_code == 200 and int(ok.headers["X-DayLimit-Remaining"]) < 5000
