"""Who may do what: scope evaluation, the keys file, Kubernetes reviews (a fake apiserver
poster) and every endpoint filtered per caller, over the in-memory store with two teams."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from datapipelines.api.access import ALL_VERBS, KeyCaller, Verb
from datapipelines.api.errors import Forbidden
from datapipelines.api.keyring import Keyring, KeysFileError, parse_keys_file, sha256
from datapipelines.api.kubeauth import ACCESS_REVIEW_PATH, TOKEN_REVIEW_PATH, KubeAuth, TtlCache
from datapipelines.api.main import create_app
from datapipelines.api.settings import Settings
from tests.support.asgi_server import AsgiServer
from tests.unit.api.fakekube import FakeStore
from tests.unit.api.test_api_mcp import connect, structured, text_of

ADMIN = "admin-key-0123456789abcdef"
A_ALL = "team-a-key-0123456789abcdef"
A_READ = "team-a-reader-0123456789abcd"
B_CANCEL = "team-b-canceller-0123456789"
KEYS = {
    "keys": [
        {"id": "team-a", "key": A_ALL, "namespaces": ["team-a"]},
        {"id": "team-a-reader", "key": A_READ, "namespaces": ["team-a"], "verbs": ["read"]},
        {
            "id": "team-b-cancel",
            "sha256": sha256(B_CANCEL).hex(),
            "namespaces": ["team-b"],
            "verbs": ["cancel"],
        },
    ]
}


# --- scope evaluation ------------------------------------------------------------------------


async def test_a_key_may_its_verbs_in_its_namespaces_only() -> None:
    key = KeyCaller("key:a", frozenset({"team-a"}), frozenset({Verb.READ, Verb.RUN}))
    assert await key.may(Verb.RUN, "team-a") and not await key.may(Verb.CANCEL, "team-a")
    assert not await key.may(Verb.READ, "team-b") and not await key.sees("team-b")
    assert await key.sees("team-a") and not key.unrestricted
    assert await key.where(Verb.RUN, ["team-a", "team-b"]) == {"team-a"}
    with pytest.raises(Forbidden) as refused:
        await key.require(Verb.CANCEL, "team-a", task_id="x")
    assert refused.value.extra == {"missing": "cancel", "namespace": "team-a", "task_id": "x"}
    assert "may read, run in team-a" in refused.value.detail
    everywhere = KeyCaller("key:all")
    assert everywhere.unrestricted and everywhere.verbs == ALL_VERBS
    assert not KeyCaller("key:r", None, frozenset({Verb.READ})).unrestricted
    assert not await KeyCaller("key:none", None, frozenset()).sees("team-a")


# --- the keys file ---------------------------------------------------------------------------


def test_keys_file_parses_yaml_and_json() -> None:
    yaml_keys = parse_keys_file("keys:\n  - id: ci\n    key: abcdefghijklmnop\n", "f")
    json_keys = parse_keys_file(json.dumps(KEYS), "f")
    assert yaml_keys[0][1].id == "key:ci" and yaml_keys[0][1].unrestricted
    assert [c.id for _, c in json_keys] == ["key:team-a", "key:team-a-reader", "key:team-b-cancel"]
    assert json_keys[2][0] == sha256(B_CANCEL)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("keys: [{id: a}]", "keys.0: Value error, give exactly one of key and sha256"),
        ("keys: [{id: a, key: short}]", "at least 16 characters"),
        ("keys: [{id: a, key: abcdefghijklmnop, verbs: [delete]}]", "keys.0.verbs.0"),
        ("keys: [{id: a, key: abcdefghijklmnop, namespace: [x]}]", "keys.0.namespace"),
        ("keys: [{id: a, sha256: nothex}]", "keys.0.sha256"),
        (
            "keys: [{id: a, key: abcdefghijklmnop}, {id: a, key: bcdefghijklmnopq}]",
            "key ids must be unique: a",
        ),
        ("keys: [", "not YAML or JSON"),
    ],
)
def test_a_bad_keys_file_names_the_field(text: str, message: str) -> None:
    with pytest.raises(KeysFileError, match=r"^keys\.yaml: ") as err:
        parse_keys_file(text, "keys.yaml")
    assert message in str(err.value)


def test_the_keyring_reloads_a_changed_file_and_keeps_the_last_good_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "keys.yaml"
    path.write_text(json.dumps(KEYS))
    now = [0.0]
    ring = Keyring(["legacy-key-0123456789"], path, clock=lambda: now[0])
    assert ring.configured
    legacy = ring.match("legacy-key-0123456789")
    assert legacy is not None and legacy.unrestricted and legacy.id.startswith("key:sha256:")
    assert ring.match(A_ALL) is not None and ring.match("nope") is None
    rotated = dict(
        keys=[{"id": "team-a", "key": "team-a-new-key-0123456789", "namespaces": ["team-a"]}]
    )
    path.write_text(json.dumps(rotated))
    assert ring.match(A_ALL) is not None  # not looked at again within 2 s
    now[0] = 3.0
    assert ring.match(A_ALL) is None and ring.match("team-a-new-key-0123456789") is not None
    path.write_text("keys: [{id: broken}]")
    now[0] = 6.0
    with caplog.at_level(logging.ERROR):
        assert ring.match("team-a-new-key-0123456789") is not None
    assert "keeping the previous keys" in caplog.text
    assert "team-a-new-key" not in caplog.text  # keys are never logged


def test_an_invalid_keys_file_at_start_stops_the_app(tmp_path: Path) -> None:
    path = tmp_path / "keys.yaml"
    path.write_text("keys: [{id: a, key: short}]")
    with pytest.raises(KeysFileError, match="at least 16"):
        create_app(Settings(api_keys_file=path), kube=FakeStore(), archive=None)


# --- endpoints per caller --------------------------------------------------------------------


@pytest.fixture
def teams() -> FakeStore:
    store = FakeStore("team-a", "team-b")
    store.add_connection("a1")
    store.add_connection("a2", concurrencyPolicy="Queue")
    store.add_connection("b1", namespace="team-b")
    store.add_connection("shared")
    store.add_connection("shared", namespace="team-b")
    store.add_run("a1-run", "a1", "Running")
    store.add_run("b1-run", "b1", "Running", namespace="team-b")
    store.add_run("a1-old", "a1", "Succeeded", startTime="2026-12-01T00:00:00Z")
    store.finish_run("a1-old")
    store.add_run("b1-old", "b1", "Succeeded", namespace="team-b", startTime="2026-12-01T00:00:00Z")
    store.finish_run("b1-old", namespace="team-b")
    return store


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    path = tmp_path / "keys.json"
    path.write_text(json.dumps(KEYS))
    return path


@pytest.fixture
async def api(teams: FakeStore, keys_file: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(api_key=ADMIN, api_keys_file=keys_file, namespace="team-a,team-b")
    app = create_app(settings, kube=teams, archive=None)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://api.test"
    ) as client:
        yield client


def key(k: str) -> dict[str, str]:
    return {"X-API-Key": k}


async def test_a_team_key_lists_only_its_namespace(api: httpx.AsyncClient) -> None:
    for path in ("/connections", "/pipelines"):
        body = (await api.get(path, headers=key(A_ALL))).json()
        assert [(c["name"], c["namespace"]) for c in body] == [
            ("a1", "team-a"),
            ("a2", "team-a"),
            ("shared", "team-a"),
        ]
    admin = (await api.get("/connections", headers=key(ADMIN))).json()
    assert len(admin) == 5
    history = (await api.get("/history", headers=key(A_ALL))).json()
    assert [h["run_id"] for h in history] == ["a1-old"]


async def test_other_teams_objects_do_not_exist_for_a_key(api: httpx.AsyncClient) -> None:
    for method, path in [
        ("GET", "/connections/b1/status"),
        ("POST", "/connections/b1/run_async"),
        ("POST", "/connections/b1/run"),
        ("GET", "/task_status/b1-run"),
        ("POST", "/cancel_task/b1-run"),
        ("GET", "/runs/b1-run/logs"),
    ]:
        resp = await api.request(method, path, headers=key(A_ALL))
        assert resp.status_code == 404, (path, resp.text)
        assert "b1" in resp.json()["detail"] and "team-b" not in resp.text
    # a name in both namespaces is not a 409 for a key that sees one of them
    status = await api.get("/connections/shared/status", headers=key(A_ALL))
    assert status.status_code == 200 and status.json()["namespace"] == "team-a"
    assert (await api.get("/connections/shared/status", headers=key(ADMIN))).status_code == 409


async def test_a_key_runs_and_cancels_in_its_namespace(api: httpx.AsyncClient) -> None:
    started = await api.post("/connections/a2/run_async", headers=key(A_ALL))
    assert started.status_code == 200, started.text
    run_id = started.json()["task_id"]
    assert (await api.get(f"/task_status/{run_id}", headers=key(A_ALL))).status_code == 200
    assert (await api.post(f"/cancel_task/{run_id}", headers=key(A_ALL))).status_code == 200


async def test_a_read_only_key_gets_403_naming_the_verb(api: httpx.AsyncClient) -> None:
    assert (await api.get("/connections/a1/status", headers=key(A_READ))).status_code == 200
    for method, path, verb in [
        ("POST", "/connections/a1/run_async", "run"),
        ("POST", "/connections/a1/run", "run"),
        ("POST", "/run_selected", "run"),
        ("POST", "/cancel_task/a1-run", "cancel"),
    ]:
        resp = await api.request(method, path, headers=key(A_READ))
        assert resp.status_code == 403, (path, resp.text)
        body = resp.json()
        assert body["missing"] == verb and "may read in team-a" in body["detail"]


async def test_a_cancel_only_key_cancels_but_cannot_read_or_run(api: httpx.AsyncClient) -> None:
    assert (await api.get("/task_status/b1-run", headers=key(B_CANCEL))).status_code == 403
    assert (await api.post("/connections/b1/run_async", headers=key(B_CANCEL))).status_code == 403
    assert (await api.get("/connections", headers=key(B_CANCEL))).json() == []
    assert (await api.post("/cancel_task/b1-run", headers=key(B_CANCEL))).status_code == 200
    assert (await api.post("/cancel_task/a1-run", headers=key(B_CANCEL))).status_code == 404


async def test_run_selected_starts_only_the_keys_namespaces(
    api: httpx.AsyncClient, teams: FakeStore
) -> None:
    resp = await api.post("/run_selected", headers=key(A_ALL))
    assert resp.status_code == 200, resp.text
    batch = resp.json()
    assert batch["connections"] == ["a1", "a2", "shared"]
    assert teams.batch_obj(batch["task_id"], namespace="team-a") is not None
    assert teams.batch_obj(batch["task_id"], namespace="team-b") is None
    status = await api.get(f"/task_status/{batch['task_id']}", headers=key(A_ALL))
    assert status.status_code == 200 and status.json()["kind"] == "batch"
    hidden = await api.get(f"/task_status/{batch['task_id']}", headers=key(B_CANCEL))
    assert hidden.status_code == 404


async def test_state_changing_requests_are_audited(
    api: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="datapipelines.audit"):
        await api.post("/connections/a1/run_async", headers=key(A_READ))
        await api.post("/connections/a2/run_async", headers=key(A_ALL))
        await api.post("/cancel_task/x", headers=key("wrong-key-0123456789"))
        await api.get("/connections", headers=key(A_ALL))  # reads are not audited
    lines = [r for r in caplog.records if r.name == "datapipelines.audit"]
    assert [(r.caller, r.status, r.route) for r in lines] == [  # type: ignore[attr-defined]
        ("key:team-a-reader", 403, "/connections/{name}/run_async"),
        ("key:team-a", 200, "/connections/{name}/run_async"),
        (None, 401, "/cancel_task/{task_id}"),
    ]
    assert lines[0].connection == "a1" and lines[2].task_id == "x"  # type: ignore[attr-defined]
    assert A_ALL not in caplog.text and A_READ not in caplog.text


# --- Kubernetes identities -------------------------------------------------------------------


class FakeReviews:
    """The apiserver's review endpoints: tokens to users, RBAC as (user, verb, resource, ns)."""

    def __init__(self) -> None:
        self.users = {"token-viewer": "system:serviceaccount:team-a:viewer"}
        self.rules: set[tuple[str, str, str, str]] = {
            ("system:serviceaccount:team-a:viewer", "get", "pipelineconnections", "team-a")
        }
        self.posts: list[str] = []

    async def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        self.posts.append(path)
        spec = body["spec"]
        if path == TOKEN_REVIEW_PATH:
            user = self.users.get(spec["token"])
            if user is None:
                return {"status": {"authenticated": False, "error": "invalid token"}}
            return {"status": {"authenticated": True, "user": {"username": user, "groups": []}}}
        assert path == ACCESS_REVIEW_PATH
        attrs = spec["resourceAttributes"]
        assert attrs["group"] == "datapipelines.io"
        rule = (spec["user"], attrs["verb"], attrs["resource"], attrs["namespace"])
        return {"status": {"allowed": rule in self.rules}}


async def test_a_kubernetes_token_is_governed_by_rbac(teams: FakeStore) -> None:
    reviews = FakeReviews()
    auth = KubeAuth(reviews.post, cache_seconds=0)
    app = create_app(
        Settings(api_key=ADMIN, namespace="team-a,team-b"), kube=teams, archive=None, kube_auth=auth
    )
    bearer = {"Authorization": "Bearer token-viewer"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://api.test"
    ) as api:
        listed = (await api.get("/connections", headers=bearer)).json()
        assert {c["namespace"] for c in listed} == {"team-a"}
        refused = await api.post("/connections/a2/run_async", headers=bearer)
        assert refused.status_code == 403 and refused.json()["missing"] == "run"
        assert (await api.get("/connections/b1/status", headers=bearer)).status_code == 404
        reviews.rules.add(
            ("system:serviceaccount:team-a:viewer", "create", "pipelineruns", "team-a")
        )
        assert (await api.post("/connections/a2/run_async", headers=bearer)).status_code == 200
        rejected = await api.get("/connections", headers={"Authorization": "Bearer forged"})
        assert rejected.status_code == 401 and "rejected" in rejected.json()["detail"]
        # an API key still works beside tokens
        assert (await api.get("/connections", headers=key(ADMIN))).status_code == 200


async def test_bearer_tokens_are_refused_when_kubernetes_auth_is_off(
    teams: FakeStore,
) -> None:
    app = create_app(Settings(api_key=ADMIN), kube=teams, archive=None)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://api.test"
    ) as api:
        resp = await api.get("/connections", headers={"Authorization": "Bearer x"})
    assert resp.status_code == 401 and "DATAPIPELINES_KUBERNETES_AUTH" in resp.json()["detail"]


async def test_reviews_are_cached_and_bounded() -> None:
    reviews = FakeReviews()
    auth = KubeAuth(reviews.post, cache_seconds=60)
    for _ in range(3):
        user = await auth.authenticate("token-viewer")
        assert user is not None and await user.may(Verb.READ, "team-a")
    assert reviews.posts == [TOKEN_REVIEW_PATH, ACCESS_REVIEW_PATH]
    assert await auth.authenticate("forged") is None
    now = [0.0]
    cache: TtlCache[str, int] = TtlCache(ttl=5, size=2, clock=lambda: now[0])
    for i, k in enumerate("abc"):
        cache.put(k, i)
    assert len(cache) == 2 and cache.get("a") == (False, None) and cache.get("c") == (True, 2)
    now[0] = 6
    assert cache.get("c") == (False, None)


# --- MCP -------------------------------------------------------------------------------------


async def test_mcp_tools_apply_the_same_scope(teams: FakeStore, keys_file: Path) -> None:
    settings = Settings(api_key=ADMIN, api_keys_file=keys_file, namespace="team-a,team-b")
    with AsgiServer(create_app(settings, kube=teams, archive=None)) as srv:
        async with connect(srv.url, key=A_READ) as client:
            listed = structured(await client.call_tool("list_connections", {}))
            assert {c["namespace"] for c in listed["connections"]} == {"team-a"}
            hidden = await client.call_tool("connection_status", {"name": "b1"})
            assert hidden.is_error and "not found" in text_of(hidden)
            refused = await client.call_tool("start_run", {"name": "a1"})
            assert refused.is_error and "may not run" in text_of(refused)
            cancel = await client.call_tool("cancel_task", {"task_id": "a1-run"})
            assert cancel.is_error and "may not cancel" in text_of(cancel)
        async with connect(srv.url, key=A_ALL) as client:
            batch = structured(await client.call_tool("run_all_enabled", {}))
            assert batch["connections"] == ["a1", "a2", "shared"]
