"""POST /connections/{name}/run (synchronous) and /run_async."""

from __future__ import annotations

import asyncio
import functools

import httpx
import pytest

from datapipelines.api import services
from datapipelines.api.catalog import summarize_connection
from datapipelines.api.main import create_app
from datapipelines.api.settings import Settings
from datapipelines.resources.run import PipelineRun
from tests.unit.api.fakekube import FakeStore, connection

RESULT_FIELDS = {
    "success",
    "duration_ms",
    "rows_inserted",
    "error",
    "report",
    "attempts",
    "records_reported",
    "progress_counts",
    "run_id",
}


def runs(fake: FakeStore) -> list[PipelineRun]:
    return list(fake.catalog.runs.values())


async def _created_run(fake: FakeStore, connection: str) -> str:
    for _ in range(200):
        for run in runs(fake):
            if run.spec.connection_name == connection and run.phase is None:
                return run.name
        await asyncio.sleep(0.005)
    raise AssertionError("no run was created")


async def test_sync_run_waits_for_the_end(client: httpx.AsyncClient, fake: FakeStore) -> None:
    request = asyncio.create_task(client.post("/connections/alpha/run"))
    run_id = await _created_run(fake, "alpha")
    run = fake.run_obj(run_id)
    assert run is not None
    assert run["spec"] == {"connectionName": "alpha", "trigger": "api"}
    assert run["metadata"]["labels"]["datapipelines.io/trigger"] == "api"
    assert run["metadata"]["namespace"] == "test"
    assert run_id.startswith("alpha-")
    await asyncio.sleep(0.02)
    assert not request.done()  # still waiting
    fake.update_run_status(run_id, phase="Running", startTime="2026-11-30T08:00:00Z")
    await asyncio.sleep(0.02)
    assert not request.done()
    fake.finish_run(run_id, "Succeeded", rowsInserted=1000, recordsReported=1000)
    resp = await asyncio.wait_for(request, 5)
    assert resp.status_code == 200
    body = resp.json()
    assert set(body) >= RESULT_FIELDS
    assert body["success"] is True
    assert body["rows_inserted"] == 1000 and body["records_reported"] == 1000
    assert body["duration_ms"] == 1500 and body["attempts"] == 1
    assert body["error"] is None
    assert body["report"] is None  # include_report defaults to false
    assert body["progress_counts"] == {"extract": {"items": 10}}
    assert body["run_id"] == run_id


async def test_sync_run_include_report(client: httpx.AsyncClient, fake: FakeStore) -> None:
    fake.on_create_run = lambda run: asyncio.get_running_loop().call_soon(
        fake.finish_run, run["metadata"]["name"]
    )
    body = (await client.post("/connections/alpha/run?include_report=true")).json()
    assert body["report"] == "loaded 10 rows" and body["report_truncated"] is False
    body = (await client.post("/connections/alpha/run?include_report=false")).json()
    assert body["report"] is None


@pytest.mark.parametrize(
    ("phase", "error"), [("Failed", "boom"), ("Cancelled", "cancelled by user")]
)
async def test_sync_run_that_ends_badly_is_200_success_false(
    client: httpx.AsyncClient, fake: FakeStore, phase: str, error: str
) -> None:
    fake.on_create_run = lambda run: asyncio.get_running_loop().call_soon(
        lambda: fake.finish_run(run["metadata"]["name"], phase, error=error, success=False)
    )
    resp = await client.post("/connections/alpha/run")
    assert resp.status_code == 200
    body = resp.json()
    assert body["success"] is False and body["error"] == error
    assert body["status"] == phase.lower()


async def test_infra_failure_without_result(client: httpx.AsyncClient, fake: FakeStore) -> None:
    def fail(run: dict) -> None:
        name = run["metadata"]["name"]
        asyncio.get_running_loop().call_soon(
            lambda: fake.update_run_status(
                name,
                phase="Failed",
                startTime="2026-11-30T08:00:00Z",
                completionTime="2026-11-30T08:00:03Z",
                attempts=2,
                conditions=[
                    {
                        "type": "Succeeded",
                        "status": "False",
                        "reason": "Failed",
                        "message": "OOMKilled",
                        "lastTransitionTime": "2026-11-30T08:00:03Z",
                    }
                ],
            )
        )

    fake.on_create_run = fail
    body = (await client.post("/connections/alpha/run")).json()
    assert body == {
        "success": False,
        "duration_ms": 3000,
        "rows_inserted": 0,
        "error": "OOMKilled",
        "report": None,
        "attempts": 2,
        "records_reported": None,
        "progress_counts": None,
        "run_id": body["run_id"],
        "status": "failed",
        "report_truncated": None,
        "schema_changes": None,
    }


async def test_run_deleted_while_waiting_is_500_json(
    client: httpx.AsyncClient, fake: FakeStore
) -> None:
    fake.on_create_run = lambda run: asyncio.get_running_loop().call_soon(
        fake.delete_run, run["metadata"]["name"]
    )
    resp = await client.post("/connections/alpha/run")
    assert resp.status_code == 500
    assert "deleted before it finished" in resp.json()["detail"]
    assert resp.json()["run_id"].startswith("alpha-")


async def test_wait_limit_is_504_and_run_goes_on(fake: FakeStore) -> None:
    app = create_app(Settings(api_key="k-123456789", run_wait_seconds=1), kube=fake, archive=None)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://t",
        headers={"X-API-Key": "k-123456789"},
    ) as c:
        resp = await c.post("/connections/alpha/run")
        assert resp.status_code == 504
        run_id = resp.json()["run_id"]
        assert f"/task_status/{run_id}" in resp.json()["detail"]
        status = (await c.get(f"/task_status/{run_id}")).json()
        assert status["active"] is True and status["status"] == "queued"


def test_wait_limit_from_connection_spec() -> None:
    conn = summarize_connection(connection("c", timeoutSeconds=100, retries=2))
    assert services.wait_limit(conn, None) == 100 * 3 + services.WAIT_SLACK_SECONDS
    assert services.wait_limit(conn, 7) == 7


def test_a_spec_the_model_refuses_is_listed_with_the_models_defaults() -> None:
    bad = connection("c")
    bad["spec"] = {"type": "rest_api", "schemaName": "s", "source": {"restApi": {}}}
    conn = summarize_connection(bad)
    assert (conn.type, conn.retries, conn.timeout_seconds) == ("rest_api", 2, 3600)
    assert conn.enabled is True and conn.concurrency_policy == "Forbid"
    bad["spec"].update(retries="three", timeoutSeconds=60)
    assert (
        summarize_connection(bad).retries == 2 and summarize_connection(bad).timeout_seconds == 60
    )


async def test_client_disconnect_leaves_the_run(client: httpx.AsyncClient, fake: FakeStore) -> None:
    request = asyncio.create_task(client.post("/connections/alpha/run"))
    run_id = await _created_run(fake, "alpha")
    request.cancel()  # the client goes away
    with pytest.raises(asyncio.CancelledError):
        await request
    assert len(fake.waiters) == 0  # no waiter left behind
    assert fake.run(run_id) is not None and fake.patches == [] and fake.deleted_jobs == []
    fake.finish_run(run_id)
    status = (await client.get(f"/task_status/{run_id}")).json()
    assert status["status"] == "finished" and status["result"]["success"] is True


async def test_run_unknown_connection_is_404(client: httpx.AsyncClient, fake: FakeStore) -> None:
    for path in ("/connections/nope/run", "/connections/nope/run_async"):
        resp = await client.post(path)
        assert resp.status_code == 404
        assert resp.json()["detail"] == "connection 'nope' not found"
    assert runs(fake) == []


@pytest.mark.parametrize("path", ["/connections/alpha/run", "/connections/alpha/run_async"])
async def test_forbid_with_active_run_is_409(
    client: httpx.AsyncClient, fake: FakeStore, path: str
) -> None:
    fake.add_run("alpha-busy", "alpha", "Running")
    resp = await client.post(path)
    assert resp.status_code == 409
    body = resp.json()
    assert body["active_task_id"] == "alpha-busy" and "alpha-busy" in body["detail"]
    assert len(runs(fake)) == 1


async def test_forbid_counts_a_run_without_status_as_active(
    client: httpx.AsyncClient, fake: FakeStore
) -> None:
    first = await client.post("/connections/alpha/run_async")
    assert first.status_code == 200
    second = await client.post("/connections/alpha/run_async")
    assert second.status_code == 409
    assert second.json()["active_task_id"] == first.json()["task_id"]


async def test_concurrent_requests_create_one_run_under_forbid(
    client: httpx.AsyncClient, fake: FakeStore
) -> None:
    answers = await asyncio.gather(*(client.post("/connections/alpha/run_async") for _ in range(5)))
    assert sorted(a.status_code for a in answers) == [200, 409, 409, 409, 409]
    assert len(runs(fake)) == 1


async def test_finished_runs_do_not_block_forbid(
    client: httpx.AsyncClient, fake: FakeStore
) -> None:
    fake.add_run("alpha-done", "alpha", "Failed")
    assert (await client.post("/connections/alpha/run_async")).status_code == 200


async def test_queue_policy_allows_a_second_run(client: httpx.AsyncClient, fake: FakeStore) -> None:
    fake.add_run("gamma-busy", "gamma", "Running")
    resp = await client.post("/connections/gamma/run_async")
    assert resp.status_code == 200


async def test_run_async(client: httpx.AsyncClient, fake: FakeStore) -> None:
    resp = await client.post("/connections/alpha/run_async")
    assert resp.status_code == 200
    body = resp.json()
    assert set(body) == {"message", "task_id", "connection"}
    assert body["connection"] == "alpha" and body["task_id"].startswith("alpha-")
    assert fake.run(body["task_id"]) is not None
    status = (await client.get(f"/task_status/{body['task_id']}")).json()
    assert status["kind"] == "single" and status["connection"] == "alpha"
    assert status["result"] is None and status["error"] is None and status["active"] is True


async def test_run_of_disabled_connection_is_allowed(client: httpx.AsyncClient) -> None:
    assert (await client.post("/connections/beta/run_async")).status_code == 200


@pytest.mark.parametrize(
    "path", ["/connections/alpha/run", "/connections/alpha/run_async", "/run_selected"]
)
async def test_apiserver_unreachable_on_write_is_503(
    client: httpx.AsyncClient, fake: FakeStore, path: str
) -> None:
    fake.unreachable = True
    resp = await client.post(path)
    assert resp.status_code == 503
    assert "not reachable" in resp.json()["detail"]


async def test_run_bad_include_report_is_422(client: httpx.AsyncClient, fake: FakeStore) -> None:
    resp = await client.post("/connections/alpha/run?include_report=perhaps")
    assert resp.status_code == 422
    assert runs(fake) == []


async def test_long_connection_names_make_valid_run_names(
    client: httpx.AsyncClient, fake: FakeStore
) -> None:
    long = "c" * 51  # the longest name the CRD admits
    fake.add_connection(long)
    body = (await client.post(f"/connections/{long}/run_async")).json()
    assert len(body["task_id"]) <= 63
    assert len(body["task_id"]) <= 57  # MAX_RUN_NAME: pod names still identify the run


async def test_sync_run_in_another_served_namespace() -> None:
    fake = FakeStore("team-a", "team-b")
    fake.add_connection("alpha")
    fake.add_connection("beta", namespace="team-b")
    fake.on_create_run = lambda run: asyncio.get_running_loop().call_soon(
        functools.partial(fake.finish_run, run["metadata"]["name"], namespace="team-b")
    )
    app = create_app(Settings(api_key="k-123456789", namespace="team-a,team-b"), kube=fake)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://t",
        headers={"X-API-Key": "k-123456789"},
    ) as c:
        resp = await c.post("/connections/beta/run?include_report=true")
    assert resp.status_code == 200
    body = resp.json()
    assert body["success"] is True and body["report"] == "loaded 10 rows"
    assert ("team-b", body["run_id"]) in fake.catalog.runs
    assert fake.report_reads == [body["run_id"]]  # read once, on demand


async def test_run_options_reach_the_run_and_its_status(
    client: httpx.AsyncClient, fake: FakeStore
) -> None:
    resp = await client.post(
        "/connections/alpha/run_async",
        params={"full_refresh": "true", "streams": "items, tags", "since": "2026-01-31T00:00:00Z"},
    )
    assert resp.status_code == 200, resp.text
    task_id = resp.json()["task_id"]
    run = fake.catalog.runs[("test", task_id)]
    assert (run.spec.full_refresh, run.spec.streams) == (True, ["items", "tags"])
    assert run.spec.since is not None and run.spec.since.isoformat() == "2026-01-31T00:00:00+00:00"
    status = (await client.get(f"/task_status/{task_id}")).json()
    assert status["options"] == {
        "full_refresh": True,
        "streams": ["items", "tags"],
        "since": "2026-01-31T00:00:00Z",
    }
    plain = (await client.post("/connections/gamma/run_async")).json()["task_id"]
    assert fake.catalog.runs[("test", plain)].spec.options is None  # never a default
    assert (await client.get(f"/task_status/{plain}")).json()["options"] is None
    bad = await client.post("/connections/gamma/run_async", params={"streams": "a;drop"})
    assert bad.status_code == 422
    bad_time = await client.post("/connections/gamma/run_async", params={"since": "yesterday"})
    assert bad_time.status_code == 422
