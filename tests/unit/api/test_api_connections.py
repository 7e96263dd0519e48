"""GET /connections, /pipelines, /connections/{name}/status."""

from __future__ import annotations

import httpx

from datapipelines.api.main import create_app
from datapipelines.api.mapping import LastRun
from datapipelines.api.settings import Settings
from tests.unit.api.fakekube import FakeStore

FIELDS = {"name", "type", "enabled", "schema_name", "last_run_at"}


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
    }
    assert beta["enabled"] is False and beta["type"] == "sql_database"
    assert beta["schema_name"] == "beta_db" and beta["last_run_at"] is None
    assert gamma["schedule"] == "*/5 * * * *"


async def test_list_connections_empty(client: httpx.AsyncClient, fake: FakeStore) -> None:
    fake._connections.clear()
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
    def __init__(self, last: LastRun | None = None, fail: bool = False) -> None:
        self.last, self.fail, self.calls = last, fail, 0

    async def recent(self, namespace: str, limit: int):  # pragma: no cover - unused here
        return []

    async def last_run(self, namespace: str, connection: str) -> LastRun | None:
        self.calls += 1
        if self.fail:
            from datapipelines.api.errors import ArchiveUnavailable

            raise ArchiveUnavailable("down")
        return self.last


async def test_status_uses_archive_when_no_run_objects(fake: FakeStore) -> None:
    archive = StubArchive(
        LastRun("archive", "2026-11-30T05:00:00Z", False, "db down", 42, 2, "a-1")
    )
    app = create_app(Settings(api_key="k-123456789", namespace="test"), kube=fake, archive=archive)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://t",
        headers={"X-API-Key": "k-123456789"},
    ) as c:
        body = (await c.get("/connections/alpha/status")).json()
        assert body["last_run_source"] == "archive"
        assert body["last_run_error"] == "db down" and body["last_run_attempts"] == 2
        # a run object in the cluster wins without asking the archive
        fake.add_run("alpha-9", "alpha", "Succeeded", startTime="2026-11-30T07:00:00Z")
        calls = archive.calls
        body = (await c.get("/connections/alpha/status")).json()
        assert body["last_run_source"] == "runs" and archive.calls == calls


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
