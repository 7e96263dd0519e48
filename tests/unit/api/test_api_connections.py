"""GET /connections, /pipelines, /connections/{name}/status; several namespaces."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from datapipelines.api import services
from datapipelines.api.access import KeyCaller
from datapipelines.api.errors import ArchiveUnavailable
from datapipelines.api.main import create_app
from datapipelines.api.models import ConflictBody, HistoryEntryOut
from datapipelines.api.settings import Settings
from tests.unit.api.fakekube import AUTH, FakeStore

FIELDS = {"name", "type", "enabled", "schema_name", "last_run_at"}

EVERYONE = KeyCaller("key:test")


async def test_list_connections(client: httpx.AsyncClient, fake: FakeStore) -> None:
    fake.add_run(
        "alpha-1",
        "alpha",
        "Succeeded",
        startTime="2026-11-30T07:00:00Z",
        completionTime="2026-11-30T07:00:05Z",
    )
    resp = await client.get("/connections")
    assert resp.status_code == 200
    body = resp.json()
    assert [c["name"] for c in body] == ["alpha", "beta", "gamma"]
    assert all(set(c) >= FIELDS for c in body)
    alpha, beta, gamma = body
    assert alpha == {
        "name": "alpha",
        "type": "rest_api",
        "enabled": True,
        "schema_name": "alpha",
        "last_run_at": "2026-11-30T07:00:00Z",
        "concurrency_policy": "Forbid",
        "schedule": None,
        "active_runs": [],
        "namespace": "test",
        "ready": None,
        "ready_reason": None,
    }
    assert beta["enabled"] is False and beta["type"] == "sql_database"
    assert beta["schema_name"] == "beta_db" and beta["last_run_at"] is None
    assert gamma["schedule"] == "*/5 * * * *"


async def test_list_connections_empty(client: httpx.AsyncClient, fake: FakeStore) -> None:
    for name in ("alpha", "beta", "gamma"):
        fake.delete_connection(name)
    resp = await client.get("/connections")
    assert resp.status_code == 200 and resp.json() == []


async def test_pipelines_same_shape_and_only_enabled(client: httpx.AsyncClient) -> None:
    all_ = (await client.get("/pipelines")).json()
    assert all_ == (await client.get("/connections")).json()
    assert [p["name"] for p in (await client.get("/pipelines?only_enabled=true")).json()] == [
        "alpha",
        "gamma",
    ]
    assert len((await client.get("/pipelines?only_enabled=false")).json()) == 3


async def test_pipelines_bad_only_enabled_is_422(client: httpx.AsyncClient) -> None:
    resp = await client.get("/pipelines?only_enabled=maybe")
    assert resp.status_code == 422
    assert resp.json()["detail"][0]["loc"] == ["query", "only_enabled"]


async def test_status_from_newest_finished_run(client: httpx.AsyncClient, fake: FakeStore) -> None:
    fake.add_run(
        "alpha-old",
        "alpha",
        "Succeeded",
        startTime="2026-11-30T06:00:00Z",
        completionTime="2026-11-30T06:00:01Z",
        attempts=1,
        result={"success": True, "durationMs": 1000, "rowsInserted": 3},
    )
    fake.add_run(
        "alpha-new",
        "alpha",
        "Failed",
        startTime="2026-11-30T07:00:00Z",
        completionTime="2026-11-30T07:00:09Z",
        attempts=3,
        result={"success": False, "durationMs": 9000, "error": "source 500"},
    )
    fake.add_run("alpha-running", "alpha", "Running", startTime="2026-11-30T07:30:00Z")
    resp = await client.get("/connections/alpha/status")
    assert resp.status_code == 200
    body = resp.json()
    assert body["last_run_at"] == "2026-11-30T07:00:00Z"
    assert body["last_run_success"] is False
    assert body["last_run_error"] == "source 500"
    assert body["last_run_duration_ms"] == 9000
    assert body["last_run_attempts"] == 3
    assert body["last_run_id"] == "alpha-new"
    assert body["last_run_source"] == "runs"
    assert body["active_runs"] == ["alpha-running"]
    assert {"name", "type", "enabled", "schema_name"} <= set(body)


async def test_status_falls_back_to_connection_status(
    client: httpx.AsyncClient, fake: FakeStore
) -> None:
    fake.add_connection(
        "delta",
        status={
            "lastRunAt": "2026-11-29T10:00:00Z",
            "lastRunSuccess": True,
            "lastRunError": None,
            "lastRunDurationMs": 1234,
            "lastRunAttempts": 1,
            "lastRunName": "delta-pruned",
        },
    )
    body = (await client.get("/connections/delta/status")).json()
    assert body["last_run_at"] == "2026-11-29T10:00:00Z"
    assert body["last_run_success"] is True
    assert body["last_run_duration_ms"] == 1234
    assert body["last_run_source"] == "connection"
    # the list uses the same fallback
    listed = {c["name"]: c for c in (await client.get("/connections")).json()}
    assert listed["delta"]["last_run_at"] == "2026-11-29T10:00:00Z"


async def test_status_never_run(client: httpx.AsyncClient) -> None:
    body = (await client.get("/connections/beta/status")).json()
    for field in (
        "last_run_at",
        "last_run_success",
        "last_run_error",
        "last_run_duration_ms",
        "last_run_attempts",
    ):
        assert body[field] is None


class StubArchive:
    """An archive that counts its reads (the status never needs it)."""

    def __init__(self, fail: bool = False) -> None:
        self.fail, self.calls = fail, 0

    async def recent(self, namespaces: list[str], limit: int) -> list[HistoryEntryOut]:
        self.calls += 1
        if self.fail:
            raise ArchiveUnavailable("down")
        return []

    async def last_run(self, namespace: str, connection: str) -> dict[str, Any] | None:
        self.calls += 1
        if self.fail:
            raise ArchiveUnavailable("down")
        return None


async def test_status_without_run_objects_from_the_operators_record(fake: FakeStore) -> None:
    """The runs were pruned: the connection's status, which the operator keeps from every
    finished run (as the archive does), answers, without asking the archive; a newer finished
    run in the cluster wins over that record."""
    fake.add_connection(
        "alpha",
        status={
            "lastRunAt": "2026-11-30T05:00:00Z",
            "lastRunSuccess": False,
            "lastRunError": "db down",
            "lastRunDurationMs": 42,
            "lastRunAttempts": 2,
            "lastRunName": "alpha-1",
        },
    )
    archive = StubArchive()
    app = create_app(Settings(api_key="k-123456789", namespace="test"), kube=fake, archive=archive)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://t",
        headers={"X-API-Key": "k-123456789"},
    ) as c:
        body = (await c.get("/connections/alpha/status")).json()
        assert body["last_run_source"] == "connection" and body["last_run_id"] == "alpha-1"
        assert body["last_run_at"] == "2026-11-30T05:00:00Z"
        assert body["last_run_success"] is False and body["last_run_duration_ms"] == 42
        assert body["last_run_error"] == "db down" and body["last_run_attempts"] == 2
        # a newer run object in the cluster wins
        fake.add_run(
            "alpha-9",
            "alpha",
            "Succeeded",
            startTime="2026-11-30T07:00:00Z",
            completionTime="2026-11-30T07:00:01Z",
        )
        body = (await c.get("/connections/alpha/status")).json()
        assert body["last_run_source"] == "runs" and body["last_run_id"] == "alpha-9"
        assert body["last_run_at"] == "2026-11-30T07:00:00Z" and body["last_run_success"] is True
        # an older one does not
        fake.add_run(
            "alpha-0",
            "alpha",
            "Failed",
            startTime="2026-11-30T04:00:00Z",
            completionTime="2026-11-30T04:00:01Z",
        )
        assert (await c.get("/connections/alpha/status")).json()["last_run_id"] == "alpha-9"
    assert archive.calls == 0


async def test_status_survives_archive_outage(fake: FakeStore) -> None:
    app = create_app(Settings(api_key="k-123456789"), kube=fake, archive=StubArchive(fail=True))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://t",
        headers={"X-API-Key": "k-123456789"},
    ) as c:
        resp = await c.get("/connections/alpha/status")
        assert resp.status_code == 200 and resp.json()["last_run_at"] is None


async def test_status_unknown_connection_is_404(client: httpx.AsyncClient) -> None:
    resp = await client.get("/connections/nope/status")
    assert resp.status_code == 404
    assert "nope" in resp.json()["detail"]


async def test_reads_are_503_until_cache_synced(client: httpx.AsyncClient, fake: FakeStore) -> None:
    fake.ready = False
    for path in (
        "/connections",
        "/pipelines",
        "/connections/alpha/status",
        "/history",
        "/task_status/x",
    ):
        resp = await client.get(path)
        assert resp.status_code == 503, path
        assert "Kubernetes API not reachable" in resp.json()["detail"]
        assert resp.headers["retry-after"]
    ready = await client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json() == {
        "status": "not ready",
        "detail": "the Kubernetes watch cache has not synced",
    }
    assert "fake" not in ready.text  # the reason stays out of the unauthenticated probe
    assert (await client.get("/healthz")).status_code == 200


async def test_ready_condition_and_a_spec_the_model_refuses(
    client: httpx.AsyncClient, fake: FakeStore
) -> None:
    condition = {
        "type": "Ready",
        "status": "False",
        "reason": "InvalidSpec",
        "message": "spec.source.restApi.baseUrl: required",
        "lastTransitionTime": "2026-11-30T08:00:00Z",
    }
    fake.add_connection("delta", status={"conditions": [condition]})
    # stored before a stricter CRD: the shared model refuses it, the API still lists it
    fake.add_connection("legacy", type="no_such_type", concurrencyPolicy="Sometimes")
    listed = {c["name"]: c for c in (await client.get("/connections")).json()}
    assert listed["delta"]["ready"] is False and listed["delta"]["ready_reason"] == "InvalidSpec"
    assert listed["alpha"]["ready"] is None and listed["alpha"]["ready_reason"] is None
    legacy = listed["legacy"]
    assert legacy["type"] == "no_such_type" and legacy["enabled"] is True
    assert legacy["concurrency_policy"] == "Sometimes" and legacy["schema_name"] == "legacy"
    assert (await client.get("/connections/legacy/status")).status_code == 200


# --- the fast list body ----------------------------------------------------------------------


async def _models(fake: FakeStore, only_enabled: bool = False) -> list[dict[str, object]]:
    found = await services.list_connections(fake, caller=EVERYONE, only_enabled=only_enabled)
    return [c.model_dump(mode="json") for c in found]


async def test_list_body_equals_list_connections_model_by_model(
    client: httpx.AsyncClient, fake: FakeStore
) -> None:
    """`GET /connections` joins cached per-connection JSON: byte-for-byte what the typed list
    would render, before and after changes (a new run, a finished one, a changed spec)."""
    fake.add_connection("delta", status={"lastRunAt": "2026-11-29T10:00:00Z"})
    fake.add_run("alpha-1", "alpha", "Running", startTime="2026-11-30T07:00:00Z")
    for step in range(3):
        resp = await client.get("/connections")
        assert resp.headers["content-type"] == "application/json"
        assert resp.json() == await _models(fake)
        body = await services.list_connections_json(fake, caller=EVERYONE, only_enabled=True)
        assert json.loads(body) == await _models(fake, only_enabled=True)
        assert (await client.get("/pipelines?only_enabled=true")).json() == await _models(
            fake, only_enabled=True
        )
        if step == 0:
            fake.finish_run("alpha-1")
            fake.add_run("gamma-1", "gamma", "Queued")
        elif step == 1:
            fake.add_connection("beta", enabled=True, schemaName="beta_v2")
            fake.delete_run("gamma-1")
    alpha = resp.json()[0]
    assert alpha["active_runs"] == [] and alpha["last_run_at"] == "2026-11-30T08:00:00Z"
    assert resp.json()[1]["schema_name"] == "beta_v2"


# --- several namespaces -----------------------------------------------------------------------


@pytest.fixture
def two() -> FakeStore:
    """A store serving team-a and team-b; `alpha` exists in both."""
    store = FakeStore("team-a", "team-b")
    store.add_connection("alpha")
    store.add_connection("gamma", concurrencyPolicy="Queue")
    store.add_connection("alpha", namespace="team-b")
    store.add_connection("beta", namespace="team-b")
    return store


def _client(store: FakeStore) -> httpx.AsyncClient:
    app = create_app(Settings(api_key=AUTH["X-API-Key"], namespace="team-a,team-b"), kube=store)
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://api.test", headers=AUTH
    )


async def test_listing_shows_every_namespace(two: FakeStore) -> None:
    async with _client(two) as client:
        body = (await client.get("/connections")).json()
    assert [(c["name"], c["namespace"]) for c in body] == [
        ("alpha", "team-a"),
        ("alpha", "team-b"),
        ("beta", "team-b"),
        ("gamma", "team-a"),
    ]
    assert body == await _models(two)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/connections/alpha/status"),
        ("POST", "/connections/alpha/run"),
        ("POST", "/connections/alpha/run_async"),
    ],
)
async def test_a_name_in_two_namespaces_is_409_naming_them(
    two: FakeStore, method: str, path: str
) -> None:
    async with _client(two) as client:
        resp = await client.request(method, path)
    assert resp.status_code == 409
    body = resp.json()
    assert "team-a, team-b" in body["detail"] and "unique" in body["detail"]
    assert body["connection"] == "alpha" and body["namespaces"] == ["team-a", "team-b"]
    assert two.catalog.runs == {}  # nothing was created


async def test_unique_names_work_in_their_own_namespace(two: FakeStore) -> None:
    async with _client(two) as client:
        status = (await client.get("/connections/beta/status")).json()
        started = (await client.post("/connections/beta/run_async")).json()
        task = (await client.get(f"/task_status/{started['task_id']}")).json()
    assert status["namespace"] == "team-b"
    run = two.catalog.runs[("team-b", started["task_id"])]
    assert run.spec.connection_name == "beta" and task["connection"] == "beta"
    # once the duplicate is gone, the name is unique again
    two.delete_connection("alpha", namespace="team-b")
    async with _client(two) as client:
        resp = await client.get("/connections/alpha/status")
    assert resp.status_code == 200 and resp.json()["namespace"] == "team-a"


async def test_conflicts_are_documented_with_the_bodies_they_have(two: FakeStore) -> None:
    async with _client(two) as client:
        paths = (await client.get("/openapi.json")).json()["paths"]
        duplicate = (await client.get("/connections/alpha/status")).json()
        two.add_run("gamma-busy", "gamma", "Running")
        two.add_connection("gamma", concurrencyPolicy="Forbid")
        busy = (await client.post("/connections/gamma/run_async")).json()
    for path, method in (
        ("/connections/{name}/status", "get"),
        ("/connections/{name}/run", "post"),
        ("/connections/{name}/run_async", "post"),
        ("/task_status/{task_id}", "get"),
        ("/cancel_task/{task_id}", "post"),
    ):
        assert "409" in paths[path][method]["responses"], path
    assert ConflictBody.model_validate(duplicate).namespaces == ["team-a", "team-b"]
    assert ConflictBody.model_validate(busy).active_task_id == "gamma-busy"


SCHEMA = {
    "name": "dp_alpha",
    "version": 3,
    "tables": [
        {
            "name": "items",
            "writeDisposition": "merge",
            "columns": [
                {"name": "id", "dataType": "bigint", "nullable": False, "primaryKey": True},
                {"name": "name", "dataType": "text", "nullable": True},
                {"name": "_dlt_load_id", "dataType": "text", "nullable": False},
                {"name": "_dlt_id", "dataType": "text", "nullable": False},
            ],
        },
        {
            "name": "items__tags",
            "parent": "items",
            "columns": [{"name": "value", "dataType": "text", "nullable": True}],
        },
    ],
}


async def test_connection_schema_from_the_newest_successful_run(
    client: httpx.AsyncClient, fake: FakeStore
) -> None:
    none = await client.get("/connections/alpha/schema")
    assert none.status_code == 200 and none.json()["source"] == "none"
    assert none.json()["tables"] == [] and none.json()["schema_name"] == "alpha"
    fake.add_run(
        "alpha-1",
        "alpha",
        "Succeeded",
        result={
            "success": True,
            "schemaChanges": [{"kind": "ColumnAdded", "table": "items", "column": "name"}],
        },
        runnerResult={"success": True, "loadedSchema": SCHEMA},
        startTime="2026-11-30T07:00:00Z",
        completionTime="2026-11-30T07:00:05Z",
    )
    fake.add_run(
        "alpha-2",
        "alpha",
        "Failed",
        result={"success": False, "error": "boom"},
        startTime="2026-11-30T08:00:00Z",
        completionTime="2026-11-30T08:00:05Z",
    )
    body = (await client.get("/connections/alpha/schema")).json()
    assert body["source"] == "run" and body["run_id"] == "alpha-1"
    assert body["loaded_at"] == "2026-11-30T07:00:05Z" and body["version"] == 3
    items, tags = body["tables"]
    assert items["name"] == "items" and items["write_disposition"] == "merge"
    assert [c["name"] for c in items["columns"]] == ["id", "name", "_dlt_load_id", "_dlt_id"]
    assert items["columns"][0] == {
        "name": "id",
        "data_type": "bigint",
        "nullable": False,
        "primary_key": True,
    }
    assert tags["parent"] == "items"
    assert body["recent_changes"] == [
        {
            "run_id": "alpha-1",
            "finished_at": "2026-11-30T07:00:05Z",
            "changes": [
                {
                    "kind": "ColumnAdded",
                    "table": "items",
                    "column": "name",
                    "data_type": None,
                    "previous_type": None,
                }
            ],
        }
    ]
    assert (await client.get("/connections/nope/schema")).status_code == 404
