"""OAuth 2.0 with rotation, without a cluster: the Secret patch is a compare-and-swap of the
token (and only the token), the file store refuses a token that changed, the grant refreshes
once per run and never spends a token it could not store; the Xero expansion."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from datapipelines.mocks import serve
from datapipelines.mocks.xero import CLIENT_ID, CLIENT_SECRET, INITIAL_REFRESH_TOKEN, XeroApi
from datapipelines.resources.connection import ConnectionSpec
from datapipelines.resources.oauth2 import OAuth2Refresh
from datapipelines.runner import oauth2, saas, secrets
from datapipelines.runner.kube import ApiError


class FakeApi:
    def __init__(self, fail: ApiError | None = None) -> None:
        self.calls: list[tuple[str, Any, str, bool]] = []
        self.fail = fail

    def patch(self, path: str, body: Any, content_type: str, dry_run: bool = False) -> Any:
        self.calls.append((path, body, content_type, dry_run))
        if self.fail is not None:
            raise self.fail
        return {}


def test_the_secret_store_swaps_the_token_only_if_it_is_still_the_one_used() -> None:
    api = FakeApi()
    store = oauth2.SecretTokenStore(api, "team", "xero", "books", "books-abcde")  # type: ignore[arg-type]
    store.swap("old", "new")
    path, body, content_type, dry = api.calls[0]
    assert path == "/api/v1/namespaces/team/secrets/xero" and not dry
    assert content_type == "application/json-patch+json"
    assert body[0] == {"op": "test", "path": "/data/refresh_token", "value": "b2xk"}
    assert body[1] == {"op": "replace", "path": "/data/refresh_token", "value": "bmV3"}
    assert {op["path"] for op in body[2:]} == {
        "/metadata/annotations/datapipelines.io~1oauth2-rotated-at",
        "/metadata/annotations/datapipelines.io~1oauth2-rotated-by-run",
    }
    assert body[3]["value"] == "books-abcde"


@pytest.mark.parametrize(
    ("status", "said"),
    [
        (422, "changed after this run's pod started"),
        (403, "annotated datapipelines.io/oauth2-connection=books"),
        (404, "does not exist"),
    ],
)
def test_a_refused_swap_says_why(status: int, said: str) -> None:
    api = FakeApi(ApiError(status, f"HTTP {status}"))
    store = oauth2.SecretTokenStore(api, "team", "xero", "books", "r")  # type: ignore[arg-type]
    with pytest.raises(oauth2.TokenStoreError, match=said) as dry:
        store.swap("old", "old", dry_run=True)
    assert "lost" not in str(dry.value)  # nothing was spent yet
    with pytest.raises(oauth2.TokenStoreError, match="token this run obtained is lost"):
        store.swap("old", "new")


def test_the_file_store_refuses_a_token_that_changed(tmp_path: Path) -> None:
    token = tmp_path / "refresh_token"
    token.write_text("one\n")
    store = oauth2.FileTokenStore(token)
    store.swap("one", "one", dry_run=True)
    assert token.read_text() == "one\n"
    store.swap("one", "two")
    assert token.read_text() == "two"
    with pytest.raises(oauth2.TokenStoreError, match="changed during the run"):
        store.swap("one", "three")


@pytest.fixture
def xero_secrets(tmp_path: Path) -> Path:
    folder = tmp_path / "xero"
    folder.mkdir()
    for key, value in (
        ("client_id", CLIENT_ID),
        ("client_secret", CLIENT_SECRET),
        ("refresh_token", INITIAL_REFRESH_TOKEN),
    ):
        (folder / key).write_text(value)
    secrets.set_secrets_dir(tmp_path)
    oauth2.forget()
    yield folder / "refresh_token"
    oauth2.forget()
    secrets.set_secrets_dir(None)


def test_a_grant_refreshes_once_and_never_spends_a_token_it_cannot_store(
    xero_secrets: Path,
) -> None:
    with serve(XeroApi(rows=1)) as api:
        settings = OAuth2Refresh(secret_name="xero", token_url=f"{api.url}/connect/token")
        grant = oauth2.Grant(settings, oauth2.FileTokenStore(xero_secrets))
        assert grant.access_token() == grant.access_token() == "xero-access-1"
        assert api.refreshes == 1 and xero_secrets.read_text() == "xero-refresh-1"
        assert grant.refresh_after("xero-access-1") == "xero-access-2"
        assert grant.refresh_after("xero-access-1") == "xero-access-2"  # another thread did
        assert api.refreshes == 2

        blocked = oauth2.Grant(settings, oauth2.SecretTokenStore(
            FakeApi(ApiError(403, "forbidden")), "team", "xero", "books", "r"))  # type: ignore[arg-type]  # fmt: skip
        with pytest.raises(oauth2.TokenStoreError, match="was not used"):
            blocked.access_token()
        assert api.refreshes == 2  # the dry run failed first: the token is still good


def test_xero_expands_to_paged_incremental_streams_of_the_discovered_tenant(
    xero_secrets: Path,
) -> None:
    spec = ConnectionSpec.model_validate(
        {
            "type": "xero",
            "schemaName": "books",
            "source": {
                "xero": {
                    "secretName": "xero",
                    "streams": ["invoices", "currencies"],
                    "tokenUrl": "http://127.0.0.1:9/connect/token",
                }
            },
        }
    )
    assert spec.source.xero is not None
    oauth2._grants["xero"] = type(  # a grant that needs no token endpoint
        "Granted", (), {"access_token": lambda self: "access"}
    )()  # type: ignore[assignment]
    found: list[tuple[str, str, str | None]] = []

    def find(base: str, token: str, wanted: str | None) -> str:
        found.append((base, token, wanted))
        return "tenant-1"

    src, streams = saas.xero(spec.source.xero, find)
    assert (
        found == [("https://api.xero.com", "access", None)] and streams == spec.source.xero.streams
    )
    assert src.base_url == "https://api.xero.com/api.xro/2.0/"
    assert src.auth is not None and src.auth.oauth2 is not None
    invoices, currencies = src.resources
    endpoint = invoices["endpoint"]
    assert endpoint["headers"] == {
        "Xero-tenant-id": "tenant-1",
        "Accept": "application/json",
        "If-Modified-Since": "{incremental.start_value}",
    }
    assert endpoint["paginator"]["total_path"] == "pagination.pageCount"
    assert endpoint["incremental"]["convert"]("/Date(1704067200000+0000)/") == "2024-01-01T00:00:00"
    assert endpoint["incremental"]["convert"](saas.XERO_EPOCH) == "1970-01-01T00:00:00"
    assert invoices["primary_key"] == "InvoiceID"
    assert "incremental" not in currencies["endpoint"] and currencies["primary_key"] == "Code"
