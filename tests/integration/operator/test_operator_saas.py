"""A SaaS connection type on the real cluster: a real runner pod syncs the vendor's local mock
(on 127.0.0.1; runner pods use the host network) with exact row counts per table."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import Callable
from typing import Any

import pytest

from datapipelines.mocks import MockApi, serve
from datapipelines.mocks.calendly import CalendlyApi
from datapipelines.mocks.fireflies import FirefliesApi
from datapipelines.mocks.hubspot import HubSpotApi
from datapipelines.mocks.intercom import IntercomApi
from datapipelines.mocks.pandadoc import PandaDocApi
from datapipelines.mocks.trello import TrelloApi
from datapipelines.mocks.wassenger import WassengerApi
from datapipelines.mocks.xero import CLIENT_ID, CLIENT_SECRET, INITIAL_REFRESH_TOKEN, XeroApi
from datapipelines.resources.oauth2 import CONNECTION_ANNOTATION, runner_account
from tests.integration.operator.opcluster import Cluster
from tests.support.processes import OperatorProcess

pytestmark = [pytest.mark.cluster, pytest.mark.pods, pytest.mark.asyncio(loop_scope="session")]


async def secret(
    cluster: Cluster, name: str, data: dict[str, str], annotations: dict[str, str] | None = None
) -> None:
    await cluster.kube.request(
        "POST",
        f"/api/v1/namespaces/{cluster.ns}/secrets",
        body={
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "annotations": annotations or {}},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
        },
    )


async def secret_data(cluster: Cluster, name: str) -> dict[str, str]:
    obj = await cluster.kube.request("GET", f"/api/v1/namespaces/{cluster.ns}/secrets/{name}")
    assert obj is not None
    return {k: base64.b64decode(v).decode() for k, v in obj["data"].items()}


async def secret_put(cluster: Cluster, name: str, key: str, value: str) -> None:
    await cluster.kube.request(
        "PATCH",
        f"/api/v1/namespaces/{cluster.ns}/secrets/{name}",
        body={"data": {key: base64.b64encode(value.encode()).decode()}},
        content_type="application/merge-patch+json",
    )


#: type -> (the mock, its Secret's keys and values, the spec's Secret references, streams
#: checked, extra settings). Calendly and Intercom sync their default streams.
Case = tuple[tuple[type[MockApi], int], dict[str, str], dict[str, Any], tuple[str, ...], dict]
SAAS: dict[str, Case] = {
    "trello": (
        (TrelloApi, 30),
        {"key": "trello-key", "token": "trello-token"},
        {"apiKeySecretRef": {"name": "trello", "key": "key"},
         "tokenSecretRef": {"name": "trello", "key": "token"}},
        ("boards", "organizations", "lists", "members", "checklists", "cards"),
        {},
    ),
    "hubspot": (
        (HubSpotApi, 30),
        {"token": "hubspot-token"},
        {"tokenSecretRef": {"name": "hubspot", "key": "token"}},
        ("contacts", "deals", "owners"),
        {"streams": ["contacts", "deals", "owners"]},
    ),
    "intercom": (
        (IntercomApi, 40),
        {"token": "intercom-token"},
        {"tokenSecretRef": {"name": "intercom", "key": "token"}},
        ("contacts", "companies", "conversations", "conversation_parts", "tickets"),
        {},
    ),
    "calendly": (
        (CalendlyApi, 30),
        {"token": "calendly-token"},
        {"tokenSecretRef": {"name": "calendly", "key": "token"}},
        (),  # every table of expected_counts()
        {},
    ),
    "pandadoc": (
        (PandaDocApi, 30),
        {"api-key": "pandadoc-key"},
        {"apiKeySecretRef": {"name": "pandadoc", "key": "api-key"}},
        ("documents", "recipients", "tokens"),
        {},
    ),
    "wassenger": (
        (WassengerApi, 30),
        {"api-key": "wassenger-token"},
        {"apiKeySecretRef": {"name": "wassenger", "key": "api-key"}},
        ("devices", "messages", "chats", "contacts", "groups"),
        {},
    ),
    "fireflies": (
        (FirefliesApi, 30),
        {"api-key": "fireflies-key"},
        {"apiKeySecretRef": {"name": "fireflies", "key": "api-key"}},
        ("transcripts",),
        {},
    ),
}  # fmt: skip
#: Where a mock serves the vendor's API root below its URL.
API_ROOT = {"trello": "/1", "wassenger": "/v1"}


async def test_each_saas_type_syncs_its_mock_with_exact_counts(
    cluster: Cluster, operator: OperatorProcess
) -> None:
    """Seven types side by side (Xero below): real runner pods, one operator."""
    apis: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        for kind, ((mock, rows), data, refs, _, extra) in SAAS.items():
            api = apis[kind] = stack.enter_context(serve(mock(rows=rows)))  # type: ignore[call-arg]
            await secret(cluster, kind, data)
            base = api.url + API_ROOT.get(kind, "")
            await cluster.connection(
                kind,
                type=kind,
                schemaName=f"{kind}_data",
                source={kind: {"baseUrl": base, **refs, **extra}},
                retries=0,
            )
            await cluster.run(f"{kind}-1", kind)
        runs = {
            kind: await cluster.wait_phase(f"{kind}-1", "Succeeded", "Failed", seconds=240)
            for kind in SAAS
        }
        expected = {kind: api.expected_counts() for kind, api in apis.items()}
    for kind, run in runs.items():
        status = run["status"]
        assert status["phase"] == "Succeeded", (kind, status)
        loaded = status["result"]["progressCounts"]["load"]
        tables = SAAS[kind][3] or tuple(expected[kind])
        assert {t: loaded.get(t) for t in tables} == {t: expected[kind][t] for t in tables}, kind


async def test_xero_runs_rotate_the_refresh_token_in_the_secret_one_run_at_a_time(
    cluster: Cluster, operator_factory: Callable[..., OperatorProcess]
) -> None:
    # the Role create_namespace rendered from the chart (release "test")
    operator_factory(DATAPIPELINES_RUNNER_OAUTH2_ROLE="test-datapipelines-runner-oauth2").start()
    await secret(
        cluster,
        "xero",
        {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
         "refresh_token": INITIAL_REFRESH_TOKEN},
        annotations={CONNECTION_ANNOTATION: "books"},
    )  # fmt: skip
    streams = ["currencies", "invoices"]
    with serve(XeroApi(rows=20)) as api:
        await cluster.connection(
            "books",
            type="xero",
            schemaName="books_data",
            concurrencyPolicy="Queue",
            source={
                "xero": {
                    "baseUrl": api.url,
                    "tokenUrl": f"{api.url}/connect/token",
                    "secretName": "xero",
                    "streams": streams,
                    "requestsPerSecond": 100,
                }
            },
            retries=0,
        )
        await cluster.run("books-1", "books")
        first = await cluster.wait_phase("books-1", "Succeeded", "Failed", seconds=240)
        assert first["status"]["phase"] == "Succeeded", first["status"]
        # two runs asked for together: they run one after the other, each with its own token
        await asyncio.gather(cluster.run("books-2", "books"), cluster.run("books-3", "books"))
        for name in ("books-2", "books-3"):
            run = await cluster.wait_phase(name, "Succeeded", "Failed", seconds=240)
            assert run["status"]["phase"] == "Succeeded", run["status"]
        expected = api.expected_counts(streams)
        assert (api.refreshes, api.refused_refreshes) == (3, 0)
        held = await secret_data(cluster, "xero")
        assert held["refresh_token"] == api.current_refresh_token == "xero-refresh-3"
        # an old copy of the token put back: the run fails saying what to do, nothing spent
        await secret_put(cluster, "xero", "refresh_token", "xero-refresh-1")
        await cluster.run("books-4", "books")
        used = await cluster.wait_phase("books-4", "Succeeded", "Failed", seconds=240)
    loaded = first["status"]["result"]["progressCounts"]["load"]
    assert {t: loaded.get(t) for t in streams} == expected
    assert used["status"]["phase"] == "Failed"
    error = used["status"]["result"]["error"]
    assert error.startswith("bad credentials: ") and "invalid_grant" in error, error
    assert "authorise again" in error and "xero-refresh" not in error
    account = await cluster.kube.request(
        "GET", f"/api/v1/namespaces/{cluster.ns}/serviceaccounts/{runner_account('books')}"
    )
    assert account is not None and account["metadata"]["ownerReferences"][0]["name"] == "books"
