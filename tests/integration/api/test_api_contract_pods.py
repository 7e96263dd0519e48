"""End to end through the API: the real operator, real runner pods, the PostgreSQL archive.

The API and the operator run as their console scripts against the local cluster; the runner
pods (hostNetwork) read the demo HTTP source served by this test process.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from datapipelines.runner.demo_source import DemoState
from tests.integration.api.apikit import API_KEY, ApiServer
from tests.support.cluster import kubectl
from tests.support.http_source import HttpSource, demo_source_spec, serve_demo_source
from tests.support.kube import (
    connection,
    create_namespace,
    delete_namespace,
    get_obj,
    kubectl_apply,
)
from tests.support.postgres import PostgresServer
from tests.support.processes import OperatorProcess
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.pods, pytest.mark.postgres]

RUN_TIMEOUT = 240  # a runner pod on a busy 2-core machine


@dataclass
class Env:
    ns: str
    api: ApiServer
    operator: OperatorProcess
    fast: HttpSource
    slow: HttpSource
    archive: PostgresServer
    archive_db: str

    def client(self, timeout: float = RUN_TIMEOUT) -> httpx.Client:
        return self.api.client(timeout=timeout)


@pytest.fixture(scope="module")
def env(crds: None, images: object, postgres_server: PostgresServer) -> Iterator[Env]:
    ns = create_namespace("api-pods")
    db = postgres_server.create_database()
    dsn = postgres_server.dsn(db)
    with (
        serve_demo_source(DemoState(records=300, page_size=100)) as fast,
        serve_demo_source(DemoState(records=1000, page_size=100, delay_ms=1500)) as slow,
    ):
        kubectl_apply(
            [
                connection("p-fast", ns, source=demo_source_spec(fast.url)),
                connection("p-bad", ns, source=demo_source_spec("http://127.0.0.1:9/")),
                connection("p-slow", ns, enabled=False, source=demo_source_spec(slow.url)),
            ]
        )
        operator = OperatorProcess(ns, DATAPIPELINES_HISTORY_DSN=dsn)
        api = ApiServer(ns, key=API_KEY, history_dsn=dsn)
        operator.start()
        api.start()
        try:
            api.wait_healthy()
            e = Env(ns, api, operator, fast, slow, postgres_server, db)
            with e.client() as c:
                wait_for(lambda: len(c.get("/connections").json()) == 3, "connections")
            yield e
        finally:
            api.stop()
            operator.stop()
            print("operator log:\n" + operator.log_tail(80))
            print("api log:\n" + api.log_tail(40))
            delete_namespace(ns)


def _finished(c: httpx.Client, task_id: str) -> dict:
    return wait_for(
        lambda: (s := c.get(f"/task_status/{task_id}").json())["active"] is False and s,
        f"task {task_id} to finish",
        timeout=RUN_TIMEOUT,
        every=1,
    )


def _running(c: httpx.Client, task_id: str) -> None:
    wait_for(
        lambda: c.get(f"/task_status/{task_id}").json()["status"] == "running",
        f"task {task_id} to be running",
        timeout=RUN_TIMEOUT,
        every=1,
    )


def test_sync_run_with_a_real_pod(env: Env) -> None:
    with env.client() as c:
        resp = c.post("/connections/p-fast/run", params={"include_report": "true"})
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["success"] is True, body
        assert body["rows_inserted"] == 300 and body["error"] is None
        assert isinstance(body["report"], str) and body["report"]
        assert body["attempts"] == 1 and body["duration_ms"] > 0
        run_id = body["run_id"]
        task = c.get(f"/task_status/{run_id}").json()
        assert task["status"] == "finished" and task["result"]["success"] is True
        status = c.get("/connections/p-fast/status").json()
        assert status["last_run_success"] is True and status["last_run_id"] == run_id
        assert status["last_run_at"] and status["last_run_attempts"] == 1
        assert any(e["run_id"] == run_id for e in c.get("/history").json())
        # without include_report the report is null
        again = c.post("/connections/p-fast/run").json()
        assert again["success"] is True and again["report"] is None


def test_failing_source_answers_200_with_success_false(env: Env) -> None:
    with env.client() as c:
        resp = c.post("/connections/p-bad/run")
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["success"] is False and body["error"], body
        status = c.get("/connections/p-bad/status").json()
        assert status["last_run_success"] is False and status["last_run_error"]


def test_cancel_a_running_run(env: Env) -> None:
    with env.client() as c:
        run_id = c.post("/connections/p-slow/run_async").json()["task_id"]
        _running(c, run_id)
        assert c.post("/connections/p-slow/run_async").status_code == 409
        resp = c.post(f"/cancel_task/{run_id}")
        assert resp.status_code == 200, resp.text
        done = _finished(c, run_id)
        assert done["status"] == "cancelled" and done["canceled"] is True
        assert done["result"]["success"] is False
        assert c.post(f"/cancel_task/{run_id}").status_code == 404
        wait_for(lambda: get_obj(env.ns, "job", run_id) is None, "the Job to be deleted")


def test_run_selected_runs_the_enabled_connections(env: Env) -> None:
    with env.client() as c:
        body = c.post("/run_selected").json()
        assert body["connections"] == ["p-bad", "p-fast"]
        done = _finished(c, body["task_id"])
        assert done["kind"] == "batch" and done["status"] == "finished"
        assert sorted(done["completed"]) == ["p-bad", "p-fast"]
        assert done["finished_at"] and done["current"] is None
        outcome = {r["connection"]: r["success"] for r in done["runs"]}
        assert outcome == {"p-bad": False, "p-fast": True}


def test_api_restart_while_a_run_goes_on(env: Env) -> None:
    with env.client() as c:
        run_id = c.post("/connections/p-slow/run_async").json()["task_id"]
        _running(c, run_id)
    env.api.kill()
    env.api.start()  # same port, same namespace, nothing remembered in memory
    env.api.wait_healthy()
    with env.client() as c:
        assert c.get(f"/task_status/{run_id}").json()["active"] is True
        done = _finished(c, run_id)
        assert done["status"] == "finished" and done["result"]["success"] is True
        assert done["result"]["rows_inserted"] == 1000


def test_sync_client_disconnect_leaves_the_run(env: Env) -> None:
    with env.client(timeout=2) as c, pytest.raises(httpx.ReadTimeout):
        c.post("/connections/p-slow/run")
    with env.client() as c:
        run_id = wait_for(
            lambda: c.get("/connections/p-slow/status").json()["active_runs"], "active run"
        )[0]
        done = _finished(c, run_id)
        assert done["result"]["success"] is True


def test_history_outlives_run_objects(env: Env) -> None:
    with env.client() as c:
        entries = c.get("/history", params={"limit": 1000}).json()
        fast_runs = [e["run_id"] for e in entries if e["connection"] == "p-fast"]
        assert fast_runs
        wait_for(
            lambda: (
                len(
                    env.archive.query(
                        "SELECT run_name FROM datapipelines_run_history"
                        " WHERE connection = 'p-fast'",
                        database=env.archive_db,
                    )
                )
                >= len(fast_runs)
            ),
            "the operator to archive the runs",
            timeout=120,
        )
        for name in fast_runs:
            kubectl("delete", "prun", name, "-n", env.ns, "--wait=true", "--timeout=60s")
        for name in fast_runs:
            wait_for(
                lambda n=name: c.get(f"/task_status/{n}").status_code == 404,
                f"{name} gone from the cache",
            )
        archived = c.get("/history", params={"limit": 1000})
        assert archived.headers["X-DataPipelines-History-Archive"] == "ok"
        assert set(fast_runs) <= {e["run_id"] for e in archived.json()}
        status = c.get("/connections/p-fast/status").json()
        # the operator's record on the connection outlives the run objects (the archive is
        # asked only when neither it nor the cache knows a run)
        assert status["last_run_source"] == "connection" and status["last_run_success"] is True
