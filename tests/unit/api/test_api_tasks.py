"""/run_selected, /task_status/{task_id}, /cancel_task/{task_id}."""

from __future__ import annotations

import httpx
import pytest

from datapipelines.api.main import create_app
from datapipelines.api.settings import Settings
from tests.unit.api.fakekube import AUTH, KEY, FakeStore

BATCH_FIELDS = {
    "status",
    "connections",
    "current",
    "completed",
    "canceled",
    "started_at",
    "finished_at",
    "active",
    "kind",
}
SINGLE_FIELDS = BATCH_FIELDS | {"connection", "result", "error"}


async def test_run_selected_creates_a_batch_of_enabled(
    client: httpx.AsyncClient, fake: FakeStore
) -> None:
    resp = await client.post("/run_selected")
    assert resp.status_code == 200
    body = resp.json()
    assert set(body) == {"message", "task_id", "connections"}
    assert body["connections"] == ["alpha", "gamma"]
    batch = fake.batch_obj(body["task_id"])
    assert batch is not None and batch["spec"] == {"connections": ["alpha", "gamma"]}
    assert batch["metadata"]["labels"] == {"datapipelines.io/trigger": "api"}
    assert body["task_id"].startswith("batch-")
    status = (await client.get(f"/task_status/{body['task_id']}")).json()
    assert set(status) >= BATCH_FIELDS
    assert status["kind"] == "batch" and status["status"] == "queued"
    assert status["connections"] == ["alpha", "gamma"] and status["active"] is True
    assert status["completed"] == [] and status["canceled"] is False
    assert status["started_at"]  # creation time until the operator starts it


async def test_run_selected_with_nothing_enabled(
    client: httpx.AsyncClient, fake: FakeStore
) -> None:
    for name in ("alpha", "gamma"):
        fake.add_connection(name, enabled=False)
    body = (await client.post("/run_selected")).json()
    assert body["connections"] == []
    status = (await client.get(f"/task_status/{body['task_id']}")).json()
    assert status["kind"] == "batch" and status["connections"] == []


async def test_task_status_of_a_running_batch(client: httpx.AsyncClient, fake: FakeStore) -> None:
    fake.add_batch(
        "batch-1",
        ["alpha", "gamma"],
        state="running",
        current="gamma",
        completed=["alpha"],
        startedAt="2026-11-30T08:00:00Z",
        runs=[
            {"connection": "alpha", "runName": "alpha-b1", "phase": "Succeeded"},
            {"connection": "gamma", "runName": "gamma-b1", "phase": "Running"},
        ],
    )
    fake.add_run("alpha-b1", "alpha", "Succeeded", batch="batch-1", trigger="batch")
    fake.add_run("gamma-b1", "gamma", "Running", batch="batch-1", trigger="batch")
    body = (await client.get("/task_status/batch-1")).json()
    assert body["status"] == "running" and body["current"] == "gamma"
    assert body["completed"] == ["alpha"] and body["active"] is True
    assert body["started_at"] == "2026-11-30T08:00:00Z" and body["finished_at"] is None
    assert [r["run_id"] for r in body["runs"]] == ["alpha-b1", "gamma-b1"]
    assert body["runs"][0]["success"] is True and body["runs"][1]["success"] is None
    run = (await client.get("/task_status/gamma-b1")).json()
    assert run["batch"] == "batch-1" and run["trigger"] == "batch"


@pytest.mark.parametrize(
    ("state", "cancel", "active", "canceled"),
    [
        ("finished", False, False, False),
        ("cancelled", True, False, True),
        ("running", True, True, True),
    ],
)
async def test_task_status_batch_states(
    client: httpx.AsyncClient,
    fake: FakeStore,
    state: str,
    cancel: bool,
    active: bool,
    canceled: bool,
) -> None:
    fake.add_batch(
        "b",
        ["alpha"],
        cancel_requested=cancel,
        state=state,
        finishedAt=None if active else "2026-11-30T09:00:00Z",
    )
    body = (await client.get("/task_status/b")).json()
    assert body["status"] == state and body["active"] is active and body["canceled"] is canceled


async def test_task_status_of_single_run_lifecycle(
    client: httpx.AsyncClient, fake: FakeStore
) -> None:
    fake.add_run("alpha-1", "alpha", None)
    body = (await client.get("/task_status/alpha-1")).json()
    assert set(body) >= SINGLE_FIELDS
    assert body["status"] == "queued" and body["current"] is None and body["result"] is None
    fake.update_run_status(
        "alpha-1",
        phase="Running",
        startTime="2026-11-30T08:00:00Z",
        progress={
            "stage": "extract",
            "recordsExtracted": 120,
            "tables": {"items": 120},
            "updatedAt": "2026-11-30T08:00:01Z",
        },
    )
    body = (await client.get("/task_status/alpha-1")).json()
    assert body["status"] == "running" and body["current"] == "alpha"
    assert body["progress"] == {
        "stage": "extract",
        "records_extracted": 120,
        "tables": {"items": 120},
        "rows_loaded": None,
        "jobs_done": None,
        "jobs_total": None,
        "updated_at": "2026-11-30T08:00:01Z",
    }
    assert body["started_at"] == "2026-11-30T08:00:00Z" and body["active"] is True
    assert fake.report_reads == []  # nothing to read while it runs
    fake.finish_run("alpha-1", "Failed", error="source said 500")
    # the report is not kept in memory: the catalog knows there is one, and it is read on
    # demand for the finished run's status
    assert fake.catalog.runs[("test", "alpha-1")].report() is None
    assert ("test", "alpha-1") in fake.catalog.reports
    body = (await client.get("/task_status/alpha-1")).json()
    assert body["status"] == "finished" and body["active"] is False
    assert body["completed"] == ["alpha"] and body["finished_at"] == "2026-11-30T08:00:02Z"
    assert body["error"] == "source said 500"
    assert body["result"]["success"] is False and body["result"]["run_id"] == "alpha-1"
    assert body["result"]["report"] == "loaded 10 rows"
    assert body["result"]["report_truncated"] is False
    assert fake.report_reads == ["alpha-1"]


async def test_task_status_cancelled_run(client: httpx.AsyncClient, fake: FakeStore) -> None:
    fake.add_run("alpha-c", "alpha", "Cancelled")
    body = (await client.get("/task_status/alpha-c")).json()
    assert body["status"] == "cancelled" and body["canceled"] is True
    assert body["error"] == "run cancelled"


async def test_task_status_unknown_is_404(client: httpx.AsyncClient) -> None:
    resp = await client.get("/task_status/nope")
    assert resp.status_code == 404 and "nope" in resp.json()["detail"]


async def test_cancel_running_run(client: httpx.AsyncClient, fake: FakeStore) -> None:
    fake.add_run("alpha-1", "alpha", "Running", jobName="alpha-1-job")
    resp = await client.post("/cancel_task/alpha-1")
    assert resp.status_code == 200
    assert resp.json() == {
        "message": "cancellation of run 'alpha-1' requested",
        "task_id": "alpha-1",
        "kind": "single",
    }
    assert fake.patches == [("run", "alpha-1", {"spec": {"cancelRequested": True}})]
    assert fake.deleted_jobs == ["alpha-1-job"]
    assert (await client.get("/task_status/alpha-1")).json()["canceled"] is True
    # asking again while it winds down is fine and does not patch twice
    assert (await client.post("/cancel_task/alpha-1")).status_code == 200
    assert len(fake.patches) == 1


async def test_cancel_queued_run_without_job(client: httpx.AsyncClient, fake: FakeStore) -> None:
    fake.add_run("alpha-q", "alpha", "Queued")
    assert (await client.post("/cancel_task/alpha-q")).status_code == 200
    assert fake.deleted_jobs == ["alpha-q"]  # Job name = run name


@pytest.mark.parametrize("phase", ["Succeeded", "Failed", "Cancelled"])
async def test_cancel_finished_run_is_404(
    client: httpx.AsyncClient, fake: FakeStore, phase: str
) -> None:
    fake.add_run("alpha-done", "alpha", phase)
    resp = await client.post("/cancel_task/alpha-done")
    assert resp.status_code == 404 and "already finished" in resp.json()["detail"]
    assert fake.patches == []


async def test_cancel_batch_cancels_its_active_runs(
    client: httpx.AsyncClient, fake: FakeStore
) -> None:
    fake.add_batch("batch-1", ["alpha", "gamma"], state="running", current="gamma")
    fake.add_run("alpha-b", "alpha", "Succeeded", batch="batch-1")
    fake.add_run("gamma-b", "gamma", "Running", batch="batch-1", jobName="gamma-b")
    resp = await client.post("/cancel_task/batch-1")
    assert resp.status_code == 200 and resp.json()["kind"] == "batch"
    assert ("batch", "batch-1", {"spec": {"cancelRequested": True}}) in fake.patches
    assert ("run", "gamma-b", {"spec": {"cancelRequested": True}}) in fake.patches
    assert fake.deleted_jobs == ["gamma-b"]


@pytest.mark.parametrize("state", ["finished", "cancelled"])
async def test_cancel_finished_batch_is_404(
    client: httpx.AsyncClient, fake: FakeStore, state: str
) -> None:
    fake.add_batch("b", ["alpha"], state=state)
    assert (await client.post("/cancel_task/b")).status_code == 404


async def test_cancel_unknown_is_404(client: httpx.AsyncClient) -> None:
    resp = await client.post("/cancel_task/nope")
    assert resp.status_code == 404


async def test_cancel_when_apiserver_unreachable_is_503(
    client: httpx.AsyncClient, fake: FakeStore
) -> None:
    fake.add_run("alpha-1", "alpha", "Running")
    fake.unreachable = True
    assert (await client.post("/cancel_task/alpha-1")).status_code == 503


# --- several namespaces -----------------------------------------------------------------------


@pytest.fixture
def two() -> FakeStore:
    """A store serving team-a and team-b."""
    store = FakeStore("team-a", "team-b")
    store.add_connection("alpha")
    store.add_connection("off", enabled=False)
    store.add_connection("gamma", concurrencyPolicy="Queue")
    store.add_connection("beta", namespace="team-b")
    return store


def _client(store: FakeStore) -> httpx.AsyncClient:
    app = create_app(Settings(api_key=KEY, namespace="team-a,team-b"), kube=store, archive=None)
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://api.test", headers=AUTH
    )


async def test_run_selected_makes_one_batch_per_namespace_and_status_aggregates(
    two: FakeStore,
) -> None:
    async with _client(two) as client:
        body = (await client.post("/run_selected")).json()
        task_id = body["task_id"]
        assert body["connections"] == ["alpha", "gamma", "beta"]
        a, b = two.batch_obj(task_id, "team-a"), two.batch_obj(task_id, "team-b")
        assert a is not None and a["spec"] == {"connections": ["alpha", "gamma"]}
        assert b is not None and b["spec"] == {"connections": ["beta"]}
        assert [batch.metadata.namespace for batch in two.batches(task_id)] == [
            "team-a",
            "team-b",
        ]
        status = (await client.get(f"/task_status/{task_id}")).json()
        assert status["kind"] == "batch" and status["status"] == "queued"
        assert status["connections"] == ["alpha", "gamma", "beta"]

        # team-b's batch runs; team-a's has finished
        two.update_batch_status(
            task_id,
            namespace="team-a",
            state="finished",
            completed=["alpha", "gamma"],
            startedAt="2026-11-30T08:00:00Z",
            finishedAt="2026-11-30T08:05:00Z",
        )
        two.update_batch_status(
            task_id,
            namespace="team-b",
            state="running",
            current="beta",
            startedAt="2026-11-30T07:59:00Z",
            runs=[{"connection": "beta", "runName": "beta-b1", "phase": "Running"}],
        )
        two.add_run(
            "beta-b1", "beta", "Running", batch=task_id, trigger="batch", namespace="team-b"
        )
        status = (await client.get(f"/task_status/{task_id}")).json()
        assert status["status"] == "running" and status["active"] is True
        assert status["current"] == "beta" and status["completed"] == ["alpha", "gamma"]
        assert status["started_at"] == "2026-11-30T07:59:00Z" and status["finished_at"] is None
        assert [r["run_id"] for r in status["runs"]] == ["beta-b1"]

        two.finish_run("beta-b1", namespace="team-b")
        two.update_batch_status(
            task_id,
            namespace="team-b",
            state="finished",
            current=None,
            completed=["beta"],
            finishedAt="2026-11-30T08:09:00Z",
        )
        status = (await client.get(f"/task_status/{task_id}")).json()
        assert status["status"] == "finished" and status["active"] is False
        assert status["completed"] == ["alpha", "gamma", "beta"]
        assert status["finished_at"] == "2026-11-30T08:09:00Z"
        assert status["runs"][0]["success"] is True
        assert (await client.post(f"/cancel_task/{task_id}")).status_code == 404


async def test_cancel_of_a_batch_in_two_namespaces_cancels_all(two: FakeStore) -> None:
    two.add_batch("batch-2", ["alpha"], state="running", current="alpha")
    two.add_batch("batch-2", ["beta"], namespace="team-b", state="running", current="beta")
    two.add_run("alpha-b2", "alpha", "Running", batch="batch-2", jobName="alpha-b2")
    two.add_run(
        "beta-b2", "beta", "Running", batch="batch-2", jobName="beta-b2", namespace="team-b"
    )
    async with _client(two) as client:
        resp = await client.post("/cancel_task/batch-2")
        assert resp.status_code == 200
        assert resp.json() == {
            "message": "cancellation of batch 'batch-2' requested",
            "task_id": "batch-2",
            "kind": "batch",
        }
        assert sorted(two.patches) == sorted(
            [
                ("batch", "batch-2", {"spec": {"cancelRequested": True}}),
                ("batch", "batch-2", {"spec": {"cancelRequested": True}}),
                ("run", "alpha-b2", {"spec": {"cancelRequested": True}}),
                ("run", "beta-b2", {"spec": {"cancelRequested": True}}),
            ]
        )
        for ns in ("team-a", "team-b"):
            batch = two.batch_obj("batch-2", ns)
            assert batch is not None and batch["spec"]["cancelRequested"] is True
        assert sorted(two.deleted_jobs) == ["alpha-b2", "beta-b2"]
        assert (await client.get("/task_status/batch-2")).json()["canceled"] is True


async def test_a_run_name_in_two_namespaces_is_409(two: FakeStore) -> None:
    two.add_run("same-1", "alpha", "Running")
    two.add_run("same-1", "beta", "Running", namespace="team-b")
    async with _client(two) as client:
        for method, path in (("GET", "/task_status/same-1"), ("POST", "/cancel_task/same-1")):
            resp = await client.request(method, path)
            assert resp.status_code == 409, path
            assert "team-a, team-b" in resp.json()["detail"]
    assert two.patches == []


async def test_cancel_batch_goes_on_past_a_run_deleted_meanwhile(
    client: httpx.AsyncClient, fake: FakeStore
) -> None:
    fake.add_batch("batch-1", ["alpha", "gamma"], state="running")
    fake.add_run("alpha-b", "alpha", "Running", batch="batch-1")
    fake.add_run("gamma-b", "gamma", "Running", batch="batch-1")
    del fake._objects[("pipelineruns", "test", "alpha-b")]  # gone, the watch has not said so
    resp = await client.post("/cancel_task/batch-1")
    assert resp.status_code == 200 and resp.json()["kind"] == "batch"
    assert ("run", "gamma-b", {"spec": {"cancelRequested": True}}) in fake.patches
    assert fake.deleted_jobs == ["gamma-b"]
