"""Who may do what, on the real apiserver: two teams' namespaces, scoped keys from a keys file,
ServiceAccount tokens verified by TokenReview and authorized by SubjectAccessReview against the
chart's own user roles, through REST and MCP. No operator runs: runs stay Queued, which is all
run, list and cancel need."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, TextContent

from tests.integration.api.apikit import API_KEY, ApiServer, serving
from tests.support.chart import render_chart
from tests.support.cluster import kubectl
from tests.support.kube import connection, create_namespace, delete_namespace, kubectl_apply

A_KEY = "team-a-" + uuid.uuid4().hex
A_READER = "team-a-reader-" + uuid.uuid4().hex
RELEASE = "access"


@pytest.fixture(scope="module")
def teams(crds: None) -> Iterator[tuple[str, str]]:
    a, b = create_namespace("team-a"), create_namespace("team-b")
    kubectl_apply(
        [
            connection("a-one", a, concurrencyPolicy="Queue"),
            connection("a-two", a, concurrencyPolicy="Queue"),
            connection("b-one", b, concurrencyPolicy="Queue"),
        ]
    )
    # the chart's user roles (viewer, run-operator), exactly as it ships them
    roles = [
        d
        for d in render_chart(RELEASE, a, templates=("access.yaml",))
        if d["kind"] == "ClusterRole"
    ]
    kubectl_apply(roles)
    viewer = next(r["metadata"]["name"] for r in roles if r["metadata"]["name"].endswith("-viewer"))
    kubectl("create", "serviceaccount", "analyst", "-n", a)
    kubectl(
        "create", "rolebinding", "analyst-view", "-n", a,
        f"--clusterrole={viewer}", f"--serviceaccount={a}:analyst",
    )  # fmt: skip
    try:
        yield a, b
    finally:
        delete_namespace(a)
        delete_namespace(b)
        kubectl("delete", "clusterrole", *(r["metadata"]["name"] for r in roles), check=False)


@pytest.fixture(scope="module")
def api(teams: tuple[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    a, b = teams
    keys = tmp_path_factory.mktemp("keys") / "keys.json"
    keys.write_text(
        json.dumps(
            {
                "keys": [
                    {"id": "team-a", "key": A_KEY, "namespaces": [a]},
                    {"id": "team-a-reader", "key": A_READER, "namespaces": [a], "verbs": ["read"]},
                ]
            }
        )
    )
    extra = {
        "DATAPIPELINES_API_KEYS_FILE": str(keys),
        "DATAPIPELINES_KUBERNETES_AUTH": "true",
        "DATAPIPELINES_KUBERNETES_AUTH_CACHE_SECONDS": "0",
    }
    with serving(ApiServer(f"{a},{b}", key=API_KEY, extra=extra)) as server:
        yield server


def token(ns: str, account: str) -> str:
    return str(kubectl("create", "token", account, "-n", ns, "--duration=10m").stdout.strip())


def call(api: ApiServer, method: str, path: str, headers: dict[str, str]) -> httpx.Response:
    return httpx.request(method, api.url + path, headers=headers, timeout=30)


def key(k: str) -> dict[str, str]:
    return {"X-API-Key": k}


def test_a_team_key_sees_and_runs_only_its_namespace(
    api: ApiServer, teams: tuple[str, str]
) -> None:
    a, b = teams
    listed = call(api, "GET", "/connections", key(A_KEY)).json()
    assert [(c["name"], c["namespace"]) for c in listed] == [("a-one", a), ("a-two", a)]
    assert len(call(api, "GET", "/connections", key(API_KEY)).json()) == 3
    started = call(api, "POST", "/connections/a-one/run_async", key(A_KEY))
    assert started.status_code == 200, started.text
    run_id = started.json()["task_id"]
    for method, path in [
        ("GET", "/connections/b-one/status"),
        ("POST", "/connections/b-one/run_async"),
    ]:
        resp = call(api, method, path, key(A_KEY))
        assert resp.status_code == 404 and b not in resp.text, resp.text
    b_run = call(api, "POST", "/connections/b-one/run_async", key(API_KEY)).json()["task_id"]
    assert call(api, "POST", f"/cancel_task/{b_run}", key(A_KEY)).status_code == 404
    assert call(api, "GET", f"/task_status/{b_run}", key(A_KEY)).status_code == 404
    # a read-only key reads but cannot run or cancel
    assert call(api, "GET", f"/task_status/{run_id}", key(A_READER)).status_code == 200
    refused = call(api, "POST", "/connections/a-two/run_async", key(A_READER))
    assert refused.status_code == 403 and refused.json()["missing"] == "run"
    assert call(api, "POST", f"/cancel_task/{run_id}", key(A_READER)).status_code == 403
    assert call(api, "POST", f"/cancel_task/{run_id}", key(A_KEY)).status_code == 200
    # run_selected starts only the key's namespace
    batch = call(api, "POST", "/run_selected", key(A_KEY))
    assert batch.status_code == 200, batch.text
    assert batch.json()["connections"] == ["a-one", "a-two"]
    name = batch.json()["task_id"]
    assert kubectl("get", "pipelinebatch", name, "-n", a, check=False).returncode == 0
    assert kubectl("get", "pipelinebatch", name, "-n", b, check=False).returncode != 0


def test_a_service_account_token_is_governed_by_rbac(
    api: ApiServer, teams: tuple[str, str]
) -> None:
    a, _ = teams
    bearer = {"Authorization": f"Bearer {token(a, 'analyst')}"}
    listed = call(api, "GET", "/connections", bearer)
    assert listed.status_code == 200, listed.text
    assert {c["namespace"] for c in listed.json()} == {a}
    refused = call(api, "POST", "/connections/a-one/run_async", bearer)
    assert refused.status_code == 403 and refused.json()["missing"] == "run", refused.text
    assert call(api, "GET", "/connections/b-one/status", bearer).status_code == 404
    kubectl(
        "create", "rolebinding", "analyst-run", "-n", a,
        f"--clusterrole={RELEASE}-datapipelines-{a}-run-operator",
        f"--serviceaccount={a}:analyst",
    )  # fmt: skip
    started = call(api, "POST", "/connections/a-one/run_async", bearer)
    assert started.status_code == 200, started.text
    forged = call(api, "GET", "/connections", {"Authorization": "Bearer not-a-real-token"})
    assert forged.status_code == 401 and "rejected" in forged.json()["detail"]


@asynccontextmanager
async def mcp_client(url: str, headers: dict[str, str]) -> AsyncIterator[Client]:
    timeout = httpx2.Timeout(30, read=60)
    async with (
        httpx2.AsyncClient(headers=headers, timeout=timeout) as http,
        Client(streamable_http_client(f"{url}/mcp", http_client=http)) as client,
    ):
        yield client


def text_of(result: CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))


async def test_the_same_cases_through_mcp(api: ApiServer, teams: tuple[str, str]) -> None:
    a, _ = teams
    async with mcp_client(api.url, key(A_READER)) as client:
        listed: Any = (await client.call_tool("list_connections", {})).structured_content
        assert {c["namespace"] for c in listed["connections"]} == {a}
        hidden = await client.call_tool("connection_status", {"name": "b-one"})
        assert hidden.is_error and "not found" in text_of(hidden)
        refused = await client.call_tool("start_run", {"name": "a-two"})
        assert refused.is_error and "may not run" in text_of(refused)
    async with mcp_client(api.url, key(A_KEY)) as client:
        other = await client.call_tool("start_run", {"name": "b-one"})
        assert other.is_error and "not found" in text_of(other)
        started = await client.call_tool("start_run", {"name": "a-two"})
        assert not started.is_error, text_of(started)
    viewer = {"Authorization": f"Bearer {token(a, 'analyst')}"}
    async with mcp_client(api.url, viewer) as client:
        status = await client.call_tool("connection_status", {"name": "a-one"})
        assert not status.is_error, text_of(status)
    async with httpx2.AsyncClient() as http:
        resp = await http.post(f"{api.url}/mcp", headers={"Authorization": "Bearer forged"})
        assert resp.status_code == 401
