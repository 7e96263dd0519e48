"""The first-page prefetch: which first requests are known before dlt, and that the derived
request is byte for byte the one dlt sends (checked against dlt's own rest_api source, with a
transport that answers without a network)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from datapipelines.resources.connection import RestApiSource
from datapipelines.runner import prefetch, secrets
from datapipelines.runner.prefetch import FirstRequest, first_request
from datapipelines.runner.restconfig import rest_api_config

BASE = "https://api.example.com/v1"


def config(resource: Any, defaults: dict | None = None, auth: dict | None = None) -> dict:
    client: dict[str, Any] = {"base_url": BASE}
    if auth is not None:
        client["auth"] = auth
    return {"client": client, "resource_defaults": defaults or {}, "resources": [resource]}


PAGE_NUMBER = {"type": "page_number", "base_page": 1, "total_path": "total_pages"}


@pytest.mark.parametrize(
    ("resource", "defaults", "url", "params"),
    [
        ("users", None, f"{BASE}/users", ()),
        ({"name": "users"}, None, f"{BASE}/users", ()),
        ({"name": "u", "endpoint": "people/"}, None, f"{BASE}/people/", ()),
        (
            {"name": "items", "endpoint": {"path": "/items", "params": {"page_size": 100}}},
            {"endpoint": {"paginator": PAGE_NUMBER, "params": {"sort": "id"}}},
            f"{BASE}/items",
            (("sort", "id"), ("page_size", 100), ("page", 1)),
        ),
        (
            {"name": "i", "endpoint": {"path": "i", "paginator": {"type": "page_number"}}},
            None,
            f"{BASE}/i",
            (("page", 0),),
        ),
        (
            {
                "name": "i",
                "endpoint": {
                    "path": "i",
                    "paginator": {"type": "page_number", "page": 3, "page_param": "p"},
                },
            },
            None,
            f"{BASE}/i",
            (("p", 3),),
        ),
        (
            {"name": "i", "endpoint": {"path": "i", "paginator": {"type": "offset", "limit": 50}}},
            None,
            f"{BASE}/i",
            (("offset", 0), ("limit", 50)),
        ),
        (
            {"name": "i", "endpoint": {"path": "i", "paginator": "json_link"}},
            None,
            f"{BASE}/i",
            (),
        ),
        (
            {"name": "i", "endpoint": {"path": "https://other.example.com/x"}},
            None,
            "https://other.example.com/x",
            (),
        ),
    ],
)
def test_first_request_is_derived(resource, defaults, url, params) -> None:
    derived = first_request(config(resource, defaults))
    assert derived is not None
    assert (derived.url, derived.params) == (url, params)


@pytest.mark.parametrize(
    "resource",
    [
        # the cursor's start value comes from the state restored from the destination
        {"name": "i", "endpoint": {"path": "i", "incremental": {"cursor_path": "updated_at"}}},
        {"name": "i", "endpoint": {"path": "i", "params": {"since": {"type": "incremental"}}}},
        # dependent resources
        {"name": "i", "endpoint": {"path": "users/{resources.users.id}/items"}},
        {"name": "i", "endpoint": {"path": "i", "params": {"user": "{resources.u.id}"}}},
        # what the derivation does not model
        {"name": "i", "endpoint": {"path": "i", "method": "POST", "json": {"q": 1}}},
        {"name": "i", "endpoint": {"path": "i", "headers": {"X-A": "1"}}},
        {"name": "i", "endpoint": {"path": "i", "paginator": {"type": "header_cursor"}}},
        {"name": "i", "endpoint": {"path": "i", "paginator": "offset"}},
        {
            "name": "i",
            "endpoint": {"path": "i", "paginator": {"type": "page_number", "page_body_path": "p"}},
        },
        {"endpoint": {"path": "no-name"}},
    ],
)
def test_first_request_declines_what_dlt_decides(resource) -> None:
    assert first_request(config(resource)) is None


def test_first_request_declines_cookie_auth_and_unknown_auth() -> None:
    cookie = {"type": "api_key", "name": "s", "api_key": "k", "location": "cookie"}
    assert first_request(config("users", auth=cookie)) is None
    assert first_request(config("users", auth={"type": "oauth2_client_credentials"})) is None


def test_disabled_by_the_environment() -> None:
    assert prefetch.enabled({})
    assert not prefetch.enabled({"RUNNER__PREFETCH": "false"})


# --- the derived request is the one dlt sends ------------------------------------------------


class Recorder:
    """Stands in for the running prefetch: records what dlt's session sends and answers an
    empty page (no network)."""

    def __init__(self) -> None:
        self.sent: list[Any] = []

    def claim(self, prepared: Any) -> Any:
        import requests

        self.sent.append(prepared)
        response = requests.Response()
        response.status_code = 200
        response._content = b"[]"
        response.headers["Content-Type"] = "application/json"
        response.url = prepared.url
        response.encoding = "utf-8"
        return response


@pytest.fixture
def secret_files(tmp_path: Path):
    for key, value in [("token", "tok-123"), ("user", "bob"), ("pass", "pw-456")]:
        (tmp_path / "api").mkdir(exist_ok=True)
        (tmp_path / "api" / key).write_text(value + "\n")
    secrets.set_secrets_dir(tmp_path)
    yield
    secrets.set_secrets_dir(None)
    secrets.forget_all()


TOKEN = {"name": "api", "key": "token"}


@pytest.mark.usefixtures("secret_files")
@pytest.mark.parametrize(
    ("auth", "endpoint"),
    [
        (None, {"path": "items", "params": {"page_size": 10}, "paginator": PAGE_NUMBER}),
        ({"type": "bearer", "tokenSecretRef": TOKEN}, {"path": "items"}),
        (
            {"type": "api_key", "tokenSecretRef": TOKEN, "apiKeyName": "X-Key"},
            {"path": "items", "paginator": {"type": "offset", "limit": 5, "total_path": None}},
        ),
        (
            {"type": "api_key", "tokenSecretRef": TOKEN, "apiKeyName": "key", "location": "query"},
            {"path": "items", "params": {"a": "x y", "flag": True}},
        ),
        (
            {
                "type": "http_basic",
                "usernameSecretRef": {"name": "api", "key": "user"},
                "passwordSecretRef": {"name": "api", "key": "pass"},
            },
            {"path": "/items/", "paginator": "single_page"},
        ),
    ],
)
def test_the_derived_request_is_the_one_dlt_sends(monkeypatch, auth, endpoint) -> None:
    from datapipelines.runner.sources import rest_api

    data: dict[str, Any] = {
        "baseUrl": "http://127.0.0.1:9/api/",
        "resources": [{"name": "items", "endpoint": endpoint}],
    }
    if auth is not None:
        data["auth"] = auth
    src = RestApiSource.model_validate(data)
    derived = first_request(rest_api_config(src, "append"))
    assert isinstance(derived, FirstRequest)
    guess = prefetch.Prefetch(derived)  # prepared, not sent

    recorder = Recorder()
    monkeypatch.setattr(prefetch, "_current", recorder)
    built = rest_api(src, "append", "p")
    list(built.source.resources["items"])

    assert recorder.sent, "dlt sent nothing"
    sent = recorder.sent[0]
    assert (sent.url, dict(sent.headers)) == (guess.prepared.url, dict(guess.prepared.headers))
    assert guess.matches(sent)


def test_a_failed_prefetch_hands_nothing_over() -> None:
    """Nothing listens on port 9: the transport fails, dlt must send its own request."""
    import requests

    guess = prefetch.Prefetch(FirstRequest("items", "http://127.0.0.1:9/items", ())).start()
    same = requests.Session()
    same.headers["User-Agent"] = guess.prepared.headers["User-Agent"]
    prepared = same.prepare_request(requests.Request("GET", "http://127.0.0.1:9/items"))
    assert guess.matches(prepared)
    assert guess.claim(prepared) is None
    assert guess.claim(prepared) is None  # once only
