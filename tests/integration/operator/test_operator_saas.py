"""A SaaS connection type on the real cluster: a real runner pod syncs the vendor's local mock
(on 127.0.0.1; runner pods use the host network) with exact row counts per table."""

from __future__ import annotations

import base64

import pytest

from datapipelines.mocks import serve
from datapipelines.mocks.calendly import CalendlyApi
from datapipelines.mocks.hubspot import HubSpotApi
from datapipelines.mocks.intercom import IntercomApi
from datapipelines.mocks.trello import TrelloApi
from tests.integration.operator.opcluster import Cluster
from tests.support.processes import OperatorProcess

pytestmark = [pytest.mark.cluster, pytest.mark.pods, pytest.mark.asyncio(loop_scope="session")]

TABLES = ("boards", "organizations", "lists", "members", "checklists", "cards")


async def secret(cluster: Cluster, name: str, data: dict[str, str]) -> None:
    await cluster.kube.request(
        "POST",
        f"/api/v1/namespaces/{cluster.ns}/secrets",
        body={
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
        },
    )


async def test_a_trello_connection_syncs_its_mock_with_exact_counts(
    cluster: Cluster, operator: OperatorProcess
) -> None:
    await secret(cluster, "trello", {"key": "trello-key", "token": "trello-token"})
    with serve(TrelloApi(rows=30)) as api:
        await cluster.connection(
            "boards",
            type="trello",
            schemaName="trello_data",
            source={
                "trello": {
                    "baseUrl": f"{api.url}/1",
                    "apiKeySecretRef": {"name": "trello", "key": "key"},
                    "tokenSecretRef": {"name": "trello", "key": "token"},
                }
            },
            retries=0,
        )
        await cluster.run("boards-1", "boards")
        run = await cluster.wait_phase("boards-1", "Succeeded", "Failed", seconds=240)
        expected = api.expected_counts()
    status = run["status"]
    assert status["phase"] == "Succeeded", status
    loaded = status["result"]["progressCounts"]["load"]
    assert {t: loaded.get(t) for t in TABLES} == {t: expected[t] for t in TABLES}


async def test_a_hubspot_connection_syncs_its_mock_with_exact_counts(
    cluster: Cluster, operator: OperatorProcess
) -> None:
    await secret(cluster, "hubspot", {"token": "hubspot-token"})
    with serve(HubSpotApi(rows=30)) as api:
        await cluster.connection(
            "crm",
            type="hubspot",
            schemaName="crm_data",
            source={
                "hubspot": {
                    "baseUrl": api.url,
                    "tokenSecretRef": {"name": "hubspot", "key": "token"},
                    "streams": ["contacts", "deals", "owners"],
                }
            },
            retries=0,
        )
        await cluster.run("crm-1", "crm")
        run = await cluster.wait_phase("crm-1", "Succeeded", "Failed", seconds=240)
        expected = api.expected_counts()
    status = run["status"]
    assert status["phase"] == "Succeeded", status
    loaded = status["result"]["progressCounts"]["load"]
    streams = ("contacts", "deals", "owners")
    assert {t: loaded.get(t) for t in streams} == {t: expected[t] for t in streams}


async def test_an_intercom_connection_syncs_its_mock_with_exact_counts(
    cluster: Cluster, operator: OperatorProcess
) -> None:
    await secret(cluster, "intercom", {"token": "intercom-token"})
    with serve(IntercomApi(rows=40)) as api:
        await cluster.connection(
            "support",
            type="intercom",
            schemaName="support_data",
            source={
                "intercom": {
                    "baseUrl": api.url,
                    "tokenSecretRef": {"name": "intercom", "key": "token"},
                }
            },
            retries=0,
        )
        await cluster.run("support-1", "support")
        run = await cluster.wait_phase("support-1", "Succeeded", "Failed", seconds=240)
        expected = api.expected_counts()
    status = run["status"]
    assert status["phase"] == "Succeeded", status
    loaded = status["result"]["progressCounts"]["load"]
    streams = ("contacts", "companies", "conversations", "conversation_parts", "tickets")
    assert {t: loaded.get(t) for t in streams} == {t: expected[t] for t in streams}


async def test_a_calendly_connection_syncs_its_mock_with_exact_counts(
    cluster: Cluster, operator: OperatorProcess
) -> None:
    await secret(cluster, "calendly", {"token": "calendly-token"})
    with serve(CalendlyApi(rows=30)) as api:
        await cluster.connection(
            "meetings",
            type="calendly",
            schemaName="meetings_data",
            source={
                "calendly": {
                    "baseUrl": api.url,
                    "tokenSecretRef": {"name": "calendly", "key": "token"},
                }
            },
            retries=0,
        )
        await cluster.run("meetings-1", "meetings")
        run = await cluster.wait_phase("meetings-1", "Succeeded", "Failed", seconds=240)
        expected = api.expected_counts()
    status = run["status"]
    assert status["phase"] == "Succeeded", status
    loaded = status["result"]["progressCounts"]["load"]
    assert {t: loaded.get(t) for t in expected} == expected
