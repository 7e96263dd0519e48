"""Bad input is stopped by the apiserver at admission, with the field named (schema + CEL)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from kubernetes_asyncio.client.exceptions import ApiException

from datapipelines.resources import BATCH_PLURAL, CONNECTION_PLURAL, RUN_PLURAL
from tests.integration.operator.opcluster import Cluster, batch, connection, run

pytestmark = [pytest.mark.cluster, pytest.mark.asyncio(loop_scope="session")]


async def rejected(cluster: Cluster, plural: str, body: dict[str, Any]) -> str:
    with pytest.raises(ApiException) as info:
        await cluster.kube.create(cluster.ns, plural, body)
    assert info.value.status == 422, info.value.body
    return str(info.value.body)


def conn_with(**changes: Any) -> dict[str, Any]:
    body = connection("bad")
    for dotted, value in changes.items():
        node = body["spec"]
        *path, last = dotted.split("__")
        for key in path:
            node = node.setdefault(key, {})
        if value is DELETE:
            node.pop(last, None)
        else:
            node[last] = value
    return body


DELETE = object()
WAREHOUSE = "/var/lib/datapipelines/warehouse"

CONNECTION_CASES = [
    ("type", {"type": "ftp"}, "spec.type"),
    ("type wrong kind", {"type": 3}, "spec.type"),
    ("enabled not a bool", {"enabled": "yes"}, "spec.enabled"),
    ("schemaName upper case", {"schemaName": "Demo-Data"}, "spec.schemaName"),
    ("schemaName starts with digit", {"schemaName": "1abc"}, "spec.schemaName"),
    ("schemaName too long", {"schemaName": "a" * 64}, "spec.schemaName"),
    ("schemaName missing", {"schemaName": DELETE}, "schemaName"),
    ("retries negative", {"retries": -1}, "spec.retries"),
    ("retries huge", {"retries": 1000}, "spec.retries"),
    ("retries a string", {"retries": "two"}, "spec.retries"),
    ("timeout zero", {"timeoutSeconds": 0}, "spec.timeoutSeconds"),
    ("timeout huge", {"timeoutSeconds": 10**7}, "spec.timeoutSeconds"),
    ("historyLimit huge", {"historyLimit": 5000}, "spec.historyLimit"),
    ("concurrencyPolicy unknown", {"concurrencyPolicy": "Sometimes"}, "spec.concurrencyPolicy"),
    ("writeDisposition unknown", {"writeDisposition": "upsert"}, "spec.writeDisposition"),
    ("cron out of range", {"schedule": "61 * * * *"}, "spec.schedule"),
    ("cron words", {"schedule": "every minute"}, "spec.schedule"),
    ("cron six fields", {"schedule": "* * * * * *"}, "spec.schedule"),
    ("timeZone without schedule", {"timeZone": "UTC"}, "spec.timeZone"),
    ("timeZone malformed", {"schedule": "@daily", "timeZone": "not a zone!"}, "spec.timeZone"),
    ("source of another type", {"type": "sql_database"}, "spec.source"),
    ("two sources", {"source__filesystem": {"bucketUrl": "/data"}}, "spec.source"),
    ("source missing", {"source": DELETE}, "source"),
    ("baseUrl not http", {"source__restApi__baseUrl": "ftp://x"}, "spec.source.restApi.baseUrl"),
    ("rest resources empty", {"source__restApi__resources": []}, "spec.source.restApi.resources"),
    (
        "bearer without token ref",
        {"source__restApi__auth": {"type": "bearer"}},
        "spec.source.restApi.auth.tokenSecretRef",
    ),
    (
        "inline secret value",
        {"source__restApi__auth": {"type": "bearer", "tokenSecretRef": {"name": "s"}}},
        "spec.source.restApi.auth.tokenSecretRef.key",
    ),
    ("destination unknown", {"destination": {"type": "bigquery"}}, "spec.destination.type"),
    (
        "postgres without settings",
        {"destination": {"type": "postgres"}},
        "spec.destination.postgres",
    ),
    (
        "postgres port out of range",
        {
            "destination": {
                "type": "postgres",
                "postgres": {"host": "h", "database": "d", "username": "u", "port": 70000},
            }
        },
        "spec.destination.postgres.port",
    ),
    ("runner env without name", {"runner": {"env": [{"value": "x"}]}}, "spec.runner.env[0].name"),
    (
        "runner env name reserved",
        {"runner": {"env": [{"name": "DATAPIPELINES_CONNECTION_SPEC", "value": "{}"}]}},
        "spec.runner.env[0].name",
    ),
    (
        "requests above limits",
        {"runner": {"resources": {"requests": {"memory": "2Gi"}, "limits": {"memory": "1Gi"}}}},
        "spec.runner.resources.requests",
    ),
    (
        "postgres without password ref",
        {
            "destination": {
                "type": "postgres",
                "postgres": {"host": "h", "database": "d", "username": "u"},
            }
        },
        "spec.destination.postgres.passwordSecretRef",
    ),
    (
        "schemaName equal to the DuckDB file's stem",
        {"schemaName": "demo", "destination": {"duckdb": {"path": f"{WAREHOUSE}/demo.duckdb"}}},
        "spec.schemaName",
    ),
    (
        "schemaName equal to the default warehouse file's stem",
        {"schemaName": "warehouse", "destination": {"type": "duckdb"}},
        "spec.schemaName",
    ),
    (
        "DuckDB on ephemeral storage without opt-in",
        {"destination": {"duckdb": {"path": "/data/x.duckdb"}}},
        "spec.destination.duckdb.path",
    ),
    (
        "DuckDB volume over /tmp",
        {"destination": {"duckdb": {"path": "/tmp/x.duckdb", "volume": {"emptyDir": {}}}}},
        "spec.destination.duckdb.path",
    ),
    (
        "DuckDB volume over the working dir",
        {
            "destination": {
                "duckdb": {"path": "/var/lib/datapipelines/x.duckdb", "volume": {"emptyDir": {}}}
            }
        },
        "spec.destination.duckdb.path",
    ),
    (
        "DuckDB volume in the warehouse dir",
        {"destination": {"duckdb": {"path": f"{WAREHOUSE}/x.duckdb", "volume": {"emptyDir": {}}}}},
        "spec.destination.duckdb.volume",
    ),
    (
        "ephemeral DuckDB in the warehouse dir",
        {"destination": {"duckdb": {"path": f"{WAREHOUSE}/x.duckdb", "ephemeral": True}}},
        "spec.destination.duckdb.path",
    ),
    (
        "volume with two types",
        {
            "destination": {
                "duckdb": {
                    "path": "/data/x.duckdb",
                    "volume": {"emptyDir": {}, "configMap": {"name": "c"}},
                }
            }
        },
        "spec.destination.duckdb.volume",
    ),
    (
        "trello stream unknown",
        {
            "type": "trello",
            "source": {
                "trello": {
                    "apiKeySecretRef": {"name": "trello", "key": "key"},
                    "tokenSecretRef": {"name": "trello", "key": "token"},
                    "streams": ["cards", "issues"],
                }
            },
        },
        "spec.source.trello.streams[1]",
    ),
    (
        "trello token reference without its key",
        {
            "type": "trello",
            "source": {
                "trello": {
                    "apiKeySecretRef": {"name": "trello", "key": "key"},
                    "tokenSecretRef": {"name": "trello"},
                }
            },
        },
        "spec.source.trello.tokenSecretRef.key",
    ),
    ("trello without its source", {"type": "trello"}, "spec.source"),
    ("xero without its Secret", {"type": "xero", "source": {"xero": {}}}, "secretName"),
    (
        "xero stream unknown",
        {"type": "xero", "source": {"xero": {"secretName": "xero", "streams": ["payroll"]}}},
        "spec.source.xero.streams[0]",
    ),
    (
        "oauth2_refresh without its grant",
        {
            "source": {
                "restApi": {
                    "baseUrl": "http://127.0.0.1:9/",
                    "auth": {"type": "oauth2_refresh"},
                    "resources": ["items"],
                }
            }
        },
        "spec.source.restApi.auth.oauth2",
    ),
    (
        "pacing of zero requests per second",
        {"type": "xero", "source": {"xero": {"secretName": "xero", "requestsPerSecond": 0}}},
        "spec.source.xero.requestsPerSecond",
    ),
    (
        "filesystem volume over /tmp",
        {
            "type": "filesystem",
            "source": {"filesystem": {"bucketUrl": "file:///tmp", "volume": {"emptyDir": {}}}},
        },
        "spec.source.filesystem.bucketUrl",
    ),
]


#: The sandbox holes of issue 19, each refused naming the field and the rule.
HOSTILE_CASES = [
    (
        "PYTHONPATH onto a configMap sitecustomize.py",
        {
            "type": "filesystem",
            "source": {
                "filesystem": {"bucketUrl": "/data/py", "volume": {"configMap": {"name": "evil"}}}
            },
            "runner": {"env": [{"name": "PYTHONPATH", "value": "/data/py"}]},
        },
        "spec.runner.env[0].name",
        "runner.env PYTHONPATH: runner.env may set only",
    ),
    (
        "LD_PRELOAD",
        {"runner": {"env": [{"name": "LD_PRELOAD", "value": "/data/x.so"}]}},
        "spec.runner.env[0].name",
        "runner.env LD_PRELOAD: runner.env may set only",
    ),
    (
        "a .. mount path",
        {
            "type": "filesystem",
            "source": {"filesystem": {"bucketUrl": "/data/../etc", "volume": {"emptyDir": {}}}},
        },
        "spec.source.filesystem.bucketUrl",
        "no '..' or '.' segments",
    ),
    (
        "a // DuckDB path",
        {"destination": {"duckdb": {"path": f"{WAREHOUSE}//warehouse.duckdb"}}},
        "spec.destination.duckdb.path",
        "no '//'",
    ),
    (
        "a /./ DuckDB volume path",
        {"destination": {"duckdb": {"path": "/./opt/x.duckdb", "volume": {"emptyDir": {}}}}},
        "spec.destination.duckdb.path",
        "normalised path",
    ),
]


@pytest.mark.parametrize(
    ("body", "field", "rule"),
    [pytest.param(conn_with(**c), f, r, id=i) for i, c, f, r in HOSTILE_CASES],
)
async def test_hostile_connection_refused_naming_field_and_rule(
    cluster: Cluster, body: dict[str, Any], field: str, rule: str
) -> None:
    message = await rejected(cluster, CONNECTION_PLURAL, body)
    assert field in message and rule in message, message


@pytest.mark.parametrize(
    ("body", "field"),
    [pytest.param(conn_with(**c), f, id=i) for i, c, f in CONNECTION_CASES],
)
async def test_bad_connection_rejected(cluster: Cluster, body: dict[str, Any], field: str) -> None:
    message = await rejected(cluster, CONNECTION_PLURAL, body)
    assert field in message, message


async def test_connection_name_too_long_rejected(cluster: Cluster) -> None:
    body = connection("c" * 52)
    message = await rejected(cluster, CONNECTION_PLURAL, body)
    assert "metadata.name" in message


async def test_good_connection_gets_defaults(cluster: Cluster) -> None:
    body = connection("good", schedule="*/15 * * * *", timeZone="Europe/Berlin")
    del body["spec"]["destination"]  # the default: DuckDB on the warehouse volume
    created = await cluster.create(CONNECTION_PLURAL, body)
    spec = created["spec"]
    assert spec["enabled"] is True and spec["retries"] == 2 and spec["timeoutSeconds"] == 3600
    assert spec["concurrencyPolicy"] == "Forbid" and spec["historyLimit"] == 10
    assert spec["writeDisposition"] == "append" and spec["destination"] == {"type": "duckdb"}
    assert spec["suspend"] is False


async def test_connection_status_only_through_subresource(cluster: Cluster) -> None:
    body = copy.deepcopy(connection("nostatus"))
    body["status"] = {"lastRunSuccess": True}
    created = await cluster.kube.create(cluster.ns, CONNECTION_PLURAL, body)
    assert "status" not in (created or {}) or "lastRunSuccess" not in created["status"]


RUN_CASES = [
    ("no connection", {"connectionName": DELETE}, "spec.connectionName"),
    ("empty connection", {"connectionName": ""}, "spec.connectionName"),
    ("trigger unknown", {"trigger": "cron"}, "spec.trigger"),
    ("cancel not bool", {"cancelRequested": "yes"}, "spec.cancelRequested"),
    ("schedule trigger without tick", {"trigger": "schedule"}, "spec.scheduledTime"),
]


@pytest.mark.parametrize(("changes", "field"), [pytest.param(c, f, id=i) for i, c, f in RUN_CASES])
async def test_bad_run_rejected(cluster: Cluster, changes: dict[str, Any], field: str) -> None:
    body = run("bad-run", "demo")
    for key, value in changes.items():
        if value is DELETE:
            body["spec"].pop(key)
        else:
            body["spec"][key] = value
    message = await rejected(cluster, RUN_PLURAL, body)
    assert field in message, message


async def test_run_without_spec_rejected(cluster: Cluster) -> None:
    body = run("bad-run", "demo")
    del body["spec"]
    assert "spec" in await rejected(cluster, RUN_PLURAL, body)


async def test_run_updates_guarded(cluster: Cluster) -> None:
    await cluster.run("r1", "demo")
    with pytest.raises(ApiException) as info:
        await cluster.kube.patch(
            cluster.ns, RUN_PLURAL, "r1", {"spec": {"connectionName": "other"}}
        )
    assert info.value.status == 422 and "spec.connectionName" in str(info.value.body)
    assert "immutable" in str(info.value.body)
    await cluster.kube.patch(cluster.ns, RUN_PLURAL, "r1", {"spec": {"cancelRequested": True}})
    with pytest.raises(ApiException) as info:
        await cluster.kube.patch(cluster.ns, RUN_PLURAL, "r1", {"spec": {"cancelRequested": False}})
    assert info.value.status == 422 and "spec.cancelRequested" in str(info.value.body)


async def test_bad_batches_rejected(cluster: Cluster) -> None:
    message = await rejected(cluster, BATCH_PLURAL, batch("b-dup", ["a", "a"]))
    assert "spec.connections" in message
    message = await rejected(cluster, BATCH_PLURAL, batch("b-bad", ["Not_A_Name"]))
    assert "spec.connections" in message
    body = batch("b-none", [])
    del body["spec"]["connections"]
    assert "connections" in await rejected(cluster, BATCH_PLURAL, body)
    await cluster.batch("b-ok", ["a", "b"])
    with pytest.raises(ApiException) as info:
        await cluster.kube.patch(cluster.ns, BATCH_PLURAL, "b-ok", {"spec": {"connections": ["b"]}})
    assert info.value.status == 422 and "spec.connections" in str(info.value.body)
    await cluster.kube.patch(cluster.ns, BATCH_PLURAL, "b-ok", {"spec": {"cancelRequested": True}})
    with pytest.raises(ApiException) as info:
        await cluster.kube.patch(
            cluster.ns, BATCH_PLURAL, "b-ok", {"spec": {"cancelRequested": False}}
        )
    assert info.value.status == 422 and "spec.cancelRequested" in str(info.value.body)


@pytest.mark.parametrize(
    ("field", "words"),
    [
        ("pipelineconnections.spec.concurrencyPolicy", "while one is active"),
        ("pipelineconnections.spec.source.restApi.baseUrl", "URL"),
        ("pipelineconnections.status.lastSuccessTime", "successful run"),
        ("pipelineruns.status.reason", "CamelCase"),
        ("pipelineruns.status.result.rowsInserted", "rows"),
        ("pipelinebatches.status.state", "running"),
    ],
)
def test_kubectl_explain_teaches_the_fields(crds: None, field: str, words: str) -> None:
    """Every field has a description in the CRDs the apiserver serves (`kubectl explain`)."""
    from tests.support.cluster import kubectl

    explained = kubectl("explain", field).stdout
    assert "DESCRIPTION:" in explained, explained
    description = explained.split("DESCRIPTION:", 1)[1]
    assert "<empty>" not in description and words.lower() in description.lower(), explained


async def test_a_runs_options_are_validated_and_immutable(cluster: Cluster) -> None:
    body = run("r-opts", "demo")
    body["spec"].update(fullRefresh=True, streams=["items"], since="2026-01-31T00:00:00Z")
    await cluster.kube.create(cluster.ns, RUN_PLURAL, body)
    for change, field in (
        ({"fullRefresh": False}, "spec.fullRefresh"),
        ({"streams": ["items", "more"]}, "spec.streams"),
        ({"since": "2025-01-01T00:00:00Z"}, "spec.since"),
    ):
        with pytest.raises(ApiException) as info:
            await cluster.kube.patch(cluster.ns, RUN_PLURAL, "r-opts", {"spec": change})
        assert info.value.status == 422 and field in str(info.value.body), change
    bad = run("r-bad-since", "demo")
    bad["spec"]["since"] = "last tuesday"
    assert "spec.since" in await rejected(cluster, RUN_PLURAL, bad)
