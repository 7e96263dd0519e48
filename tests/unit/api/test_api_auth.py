"""X-API-Key: every documented endpoint needs it; probes and metrics do not."""

from __future__ import annotations

import httpx
import pytest
from pydantic import ValidationError

from datapipelines.api.keyring import Keyring
from datapipelines.api.main import create_app
from datapipelines.api.settings import Settings
from tests.unit.api.fakekube import KEY, OLD_KEY, FakeStore

KEYED = [
    ("GET", "/connections"),
    ("GET", "/pipelines"),
    ("GET", "/connections/alpha/status"),
    ("POST", "/connections/alpha/run"),
    ("POST", "/connections/alpha/run_async"),
    ("POST", "/run_selected"),
    ("POST", "/cancel_task/nope"),
    ("GET", "/task_status/nope"),
    ("GET", "/history"),
]


@pytest.mark.parametrize(("method", "path"), KEYED)
async def test_missing_key_is_401(anon: httpx.AsyncClient, method: str, path: str) -> None:
    resp = await anon.request(method, path)
    assert resp.status_code == 401
    assert "X-API-Key" in resp.json()["detail"]


@pytest.mark.parametrize(("method", "path"), KEYED)
async def test_wrong_key_is_401(anon: httpx.AsyncClient, method: str, path: str) -> None:
    resp = await anon.request(method, path, headers={"X-API-Key": KEY + "x"})
    assert resp.status_code == 401
    assert resp.json() == {"detail": "invalid API key"}


async def test_empty_key_is_401(anon: httpx.AsyncClient) -> None:
    resp = await anon.get("/connections", headers={"X-API-Key": ""})
    assert resp.status_code == 401


@pytest.mark.parametrize("key", [KEY, OLD_KEY])
async def test_every_rotated_key_is_accepted(anon: httpx.AsyncClient, key: str) -> None:
    resp = await anon.get("/connections", headers={"X-API-Key": key})
    assert resp.status_code == 200


async def test_keys_are_trimmed_and_empty_parts_ignored() -> None:
    settings = Settings(api_key=" one-key-123 , ,two-key-456 ")
    assert settings.api_keys == ["one-key-123", "two-key-456"]
    app = create_app(settings, kube=FakeStore(), archive=None)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        assert (
            await c.get("/connections", headers={"X-API-Key": "two-key-456"})
        ).status_code == 200
        assert (await c.get("/connections", headers={"X-API-Key": ""})).status_code == 401


@pytest.mark.parametrize(("method", "path"), KEYED)
async def test_key_not_configured_is_500_saying_so(
    fake: FakeStore, method: str, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DATAPIPELINES_API_KEY", raising=False)
    app = create_app(Settings(api_key=None), kube=fake, archive=None)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        resp = await c.request(method, path, headers={"X-API-Key": "anything"})
    assert resp.status_code == 500
    assert "DATAPIPELINES_API_KEY is not configured" in resp.json()["detail"]


def test_empty_key_setting_means_not_configured() -> None:
    assert Settings(api_key="  ").api_keys == []
    assert Settings(api_key=" , ").api_keys == []


@pytest.mark.parametrize("placeholder", ["changeme", "<your-key>", "real-key,CHANGEME"])
def test_placeholder_key_is_refused(placeholder: str) -> None:
    with pytest.raises(ValidationError, match="placeholder"):
        Settings(api_key=placeholder)


def test_key_matches_checks_all_keys() -> None:
    # the keyring compares with every accepted key's digest, in constant time
    assert Keyring(["a", "b"]).match("b") is not None
    assert Keyring(["a", "b"]).match("c") is None
    assert Keyring(["a"]).match("") is None
    assert Keyring(["ünï"]).match("ünï") is not None


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"])
async def test_open_endpoints_need_no_key(anon: httpx.AsyncClient, path: str) -> None:
    resp = await anon.get(path)
    assert resp.status_code == 200
    assert KEY not in resp.text and OLD_KEY not in resp.text


async def test_open_endpoints_work_without_configured_key(fake: FakeStore) -> None:
    app = create_app(Settings(api_key=None), kube=fake, archive=None)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        assert (await c.get("/healthz")).status_code == 200
        assert (await c.get("/readyz")).status_code == 200


async def test_openapi_declares_the_api_key_scheme(anon: httpx.AsyncClient) -> None:
    spec = (await anon.get("/openapi.json")).json()
    assert spec["components"]["securitySchemes"]["APIKeyHeader"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": spec["components"]["securitySchemes"]["APIKeyHeader"]["description"],
    }
    for method, path in KEYED:
        template = path.replace("alpha", "{name}").replace("nope", "{task_id}")
        op = spec["paths"][template][method.lower()]
        assert op["security"] == [{"APIKeyHeader": []}], template
        assert "401" in op["responses"]
    for path in ("/healthz", "/readyz", "/metrics"):
        assert "security" not in spec["paths"][path]["get"]
