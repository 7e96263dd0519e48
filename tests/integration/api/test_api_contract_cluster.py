"""Contract tests against the real apiserver: the API process serves a namespace with no
operator, and the tests play the operator's part by writing status with kubectl. Every endpoint
and status code of docs/api.md, restarts, and the watch-fed synchronous wait.
(Real runner pods and the real operator: test_api_contract_pods.py.)
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.api.apikit import API_KEY, OLD_API_KEY, ApiServer, patch_status
from tests.support.cluster import kubectl
from tests.support.kube import connection, get_obj, kubectl_apply, kubectl_json
from tests.support.processes import free_port
from tests.support.waiting import wait_for

pytestmark = pytest.mark.cluster

NOW = "2026-11-30T08:00:00Z"


def finished_status(phase: str = "Succeeded", **result: Any) -> dict[str, Any]:
    body = {
        "success": phase == "Succeeded",
        "durationMs": 2500,
        "rowsInserted": 42,
        "recordsReported": 42,
        "progressCounts": {"load": {"items": 42}},
        "error": None if phase == "Succeeded" else "source answered 500",
        "report": "42 rows into items",
        "reportTruncated": False,
    }
    body.update(result)
    return {
        "phase": phase,
        "startTime": "2026-11-30T08:00:00Z",
        "completionTime": "2026-11-30T08:00:03Z",
        "attempts": 1,
        "conditions": [
            {
                "type": "Succeeded",
                "status": "True" if phase == "Succeeded" else "False",
                "reason": phase,
                "message": "",
                "lastTransitionTime": NOW,
            }
        ],
        "result": body,
    }


def make_run(ns: str, name: str, conn: str, **labels: str) -> None:
    kubectl_apply(
        {
            "apiVersion": "datapipelines.io/v1alpha1",
            "kind": "PipelineRun",
            "metadata": {
                "name": name,
                "namespace": ns,
                "labels": {"datapipelines.io/connection": conn, **labels},
            },
            "spec": {"connectionName": conn, "trigger": "manual"},
        }
    )


@pytest.fixture(scope="module")
def conns(namespace: str) -> list[str]:
    kubectl_apply(
        [
            connection("c-one", namespace),
            connection("c-two", namespace, schemaName="two_schema"),
            connection("c-off", namespace, enabled=False),
            connection("c-queue", namespace, concurrencyPolicy="Queue"),
        ]
    )
    return ["c-off", "c-one", "c-queue", "c-two"]


@pytest.fixture
def client(api: ApiServer) -> Iterator[httpx.Client]:
    with api.client() as c:
        yield c


def names(resp: httpx.Response) -> list[str]:
    assert resp.status_code == 200, resp.text
    return [c["name"] for c in resp.json()]


# --- auth and probes -----------------------------------------------------------------------


def test_auth(api: ApiServer, conns: list[str]) -> None:
    with api.client(key=None) as anon:
        assert anon.get("/connections").status_code == 401
        assert anon.get("/connections", headers={"X-API-Key": "wrong"}).status_code == 401
        assert anon.post("/run_selected").status_code == 401
        for path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
            resp = anon.get(path)
            assert resp.status_code == 200, path
            assert API_KEY not in resp.text and OLD_API_KEY not in resp.text
    for key in (API_KEY, OLD_API_KEY):
        with api.client(key=key) as c:
            assert c.get("/connections").status_code == 200
    spec = httpx.get(api.url + "/openapi.json").json()
    assert spec["components"]["securitySchemes"]["APIKeyHeader"]["name"] == "X-API-Key"


def test_key_not_configured_is_500(namespace: str) -> None:
    server = ApiServer(namespace, key=None)
    server.start()
    try:
        server.wait_healthy()
        with server.client() as c:
            resp = c.get("/connections")
        assert resp.status_code == 500
        assert "DATAPIPELINES_API_KEY is not configured" in resp.json()["detail"]
    finally:
        server.stop()


def test_apiserver_unreachable_is_503(namespace: str, tmp_path: Path) -> None:
    dead = tmp_path / "kubeconfig"
    dead.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        f"clusters: [{{name: c, cluster: {{server: 'https://127.0.0.1:{free_port()}', "
        "insecure-skip-tls-verify: true}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\n"
    )
    server = ApiServer(namespace, key=API_KEY, kubeconfig=dead)
    server.start()
    try:
        server.wait_healthy(ready=False)
        assert httpx.get(server.url + "/readyz").status_code == 503
        with server.client() as c:
            for method, path in (
                ("GET", "/connections"),
                ("GET", "/history"),
                ("POST", "/connections/c-one/run_async"),
                ("POST", "/run_selected"),
                ("GET", "/task_status/x"),
            ):
                resp = c.request(method, path)
                assert resp.status_code == 503, (path, resp.text)
                assert "Kubernetes API not reachable" in resp.json()["detail"]
    finally:
        server.stop()


# --- reads -----------------------------------------------------------------------------------


def test_connections_and_pipelines_follow_the_cluster(
    client: httpx.Client, namespace: str, conns: list[str]
) -> None:
    wait_for(lambda: names(client.get("/connections")) == conns, "the four connections")
    body = {c["name"]: c for c in client.get("/connections").json()}
    assert body["c-two"]["schema_name"] == "two_schema" and body["c-two"]["type"] == "rest_api"
    assert body["c-off"]["enabled"] is False and body["c-one"]["last_run_at"] is None
    assert names(client.get("/pipelines")) == conns
    assert names(client.get("/pipelines", params={"only_enabled": "true"})) == [
        "c-one",
        "c-queue",
        "c-two",
    ]
    assert client.get("/pipelines", params={"only_enabled": "nah"}).status_code == 422
    # a change made with kubectl shows up through the watch
    kubectl_apply(connection("c-late", namespace))
    wait_for(lambda: "c-late" in names(client.get("/connections")), "c-late")
    kubectl("delete", "pconn", "c-late", "-n", namespace)
    wait_for(lambda: "c-late" not in names(client.get("/connections")), "c-late gone")


def test_status_falls_back_to_connection_status(
    client: httpx.Client, namespace: str, conns: list[str]
) -> None:
    wait_for(lambda: client.get("/connections/c-two/status").status_code == 200, "c-two")
    patch_status(
        namespace,
        "pconn",
        "c-two",
        {
            "lastRunAt": "2026-11-29T10:00:00Z",
            "lastRunSuccess": False,
            "lastRunError": "token expired",
            "lastRunDurationMs": 900,
            "lastRunAttempts": 3,
            "lastRunName": "c-two-pruned",
        },
    )
    body = wait_for(
        lambda: (r := client.get("/connections/c-two/status").json())["last_run_at"] and r,
        "status from the connection",
    )
    assert body["last_run_success"] is False and body["last_run_error"] == "token expired"
    assert body["last_run_duration_ms"] == 900 and body["last_run_attempts"] == 3
    assert body["last_run_source"] == "connection"
    assert client.get("/connections/nope/status").status_code == 404


# --- runs and tasks --------------------------------------------------------------------------


def test_run_async_creates_a_run_and_forbid_answers_409(
    client: httpx.Client, namespace: str, conns: list[str]
) -> None:
    wait_for(lambda: "c-one" in names(client.get("/connections")), "c-one")
    resp = client.post("/connections/c-one/run_async")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["connection"] == "c-one" and body["message"]
    run_id = body["task_id"]
    run = get_obj(namespace, "prun", run_id)
    assert run is not None
    assert run["spec"]["connectionName"] == "c-one" and run["spec"]["trigger"] == "api"
    assert run["metadata"]["labels"]["datapipelines.io/trigger"] == "api"
    status = client.get(f"/task_status/{run_id}").json()
    assert status["kind"] == "single" and status["connection"] == "c-one"
    assert status["status"] == "queued" and status["active"] is True and status["result"] is None
    for path in ("/connections/c-one/run_async", "/connections/c-one/run"):
        conflict = client.post(path)
        assert conflict.status_code == 409, conflict.text
        assert conflict.json()["active_task_id"] == run_id and run_id in conflict.json()["detail"]
    # cancel: spec.cancelRequested in the cluster; the operator would finish it
    cancel = client.post(f"/cancel_task/{run_id}")
    assert cancel.status_code == 200 and cancel.json()["message"]
    assert get_obj(namespace, "prun", run_id)["spec"]["cancelRequested"] is True  # type: ignore[index]
    wait_for(lambda: client.get(f"/task_status/{run_id}").json()["canceled"], "canceled")
    patch_status(
        namespace,
        "prun",
        run_id,
        {
            "phase": "Cancelled",
            "conditions": [
                {
                    "type": "Succeeded",
                    "status": "False",
                    "reason": "Cancelled",
                    "message": "cancelled via the API",
                    "lastTransitionTime": NOW,
                }
            ],
        },
    )
    done = wait_for(
        lambda: (s := client.get(f"/task_status/{run_id}").json())["status"] == "cancelled" and s,
        "cancelled",
    )
    assert done["active"] is False and done["error"] == "cancelled via the API"
    assert client.post(f"/cancel_task/{run_id}").status_code == 404  # already finished
    assert client.post("/connections/c-one/run_async").status_code == 200  # free again


def test_unknown_names_are_404(client: httpx.Client, conns: list[str]) -> None:
    for method, path in (
        ("POST", "/connections/nope/run"),
        ("POST", "/connections/nope/run_async"),
        ("GET", "/connections/nope/status"),
        ("GET", "/task_status/nope"),
        ("POST", "/cancel_task/nope"),
    ):
        resp = client.request(method, path)
        assert resp.status_code == 404, path
        assert "nope" in resp.json()["detail"]


def test_sync_run_waits_on_the_watch(
    client: httpx.Client, namespace: str, conns: list[str]
) -> None:
    wait_for(lambda: "c-queue" in names(client.get("/connections")), "c-queue")
    out: dict[str, httpx.Response] = {}
    t = threading.Thread(
        target=lambda: out.setdefault(
            "r",
            client.post("/connections/c-queue/run", params={"include_report": "true"}, timeout=120),
        )
    )
    t.start()
    run = wait_for(
        lambda: [
            r
            for r in kubectl_json("get", "prun", "-n", namespace)["items"]
            if r["spec"]["connectionName"] == "c-queue"
        ],
        "the PipelineRun of the synchronous request",
    )[0]
    # A later, non-terminal event: once the API has seen it, the request must still wait.
    run_id = run["metadata"]["name"]
    patch_status(
        namespace, "prun", run_id, {"phase": "Running", "startTime": "2026-11-30T08:00:00Z"}
    )
    wait_for(
        lambda: client.get(f"/task_status/{run_id}").json()["status"] == "running",
        "the API seeing the run Running",
    )
    assert t.is_alive()  # still waiting: nothing has finished the run
    patch_status(namespace, "prun", run["metadata"]["name"], finished_status())
    t.join(30)
    resp = out["r"]
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["success"] is True and body["rows_inserted"] == 42
    assert body["duration_ms"] == 2500 and body["attempts"] == 1
    assert body["records_reported"] == 42 and body["report"] == "42 rows into items"
    assert body["progress_counts"] == {"load": {"items": 42}}
    assert body["run_id"] == run["metadata"]["name"] and body["error"] is None


def test_finished_runs_feed_history_status_and_404_on_cancel(
    client: httpx.Client, namespace: str, conns: list[str]
) -> None:
    make_run(namespace, "c-two-done", "c-two")
    patch_status(namespace, "prun", "c-two-done", finished_status("Failed"))
    wait_for(
        lambda: client.get("/task_status/c-two-done").json()["status"] == "finished", "finished run"
    )
    task = client.get("/task_status/c-two-done").json()
    assert task["result"]["success"] is False and task["error"] == "source answered 500"
    assert client.post("/cancel_task/c-two-done").status_code == 404
    status = client.get("/connections/c-two/status").json()
    assert status["last_run_source"] == "runs" and status["last_run_id"] == "c-two-done"
    history = client.get("/history", params={"limit": 1000}).json()
    entry = next(e for e in history if e["run_id"] == "c-two-done")
    assert entry["connection"] == "c-two" and entry["status"] == "failed"
    assert entry["success"] is False and entry["rows_inserted"] == 42
    assert entry["trigger"] == "manual"
    assert len(client.get("/history", params={"limit": 1}).json()) == 1
    for bad in ("0", "1001", "-5", "x"):
        assert client.get("/history", params={"limit": bad}).status_code == 422


def test_run_selected_and_batch_status_and_cancel(
    client: httpx.Client, namespace: str, conns: list[str]
) -> None:
    wait_for(
        lambda: len(names(client.get("/pipelines", params={"only_enabled": "true"}))) == 3,
        "enabled connections",
    )
    resp = client.post("/run_selected")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["connections"] == ["c-one", "c-queue", "c-two"] and body["message"]
    batch = get_obj(namespace, "pbatch", body["task_id"])
    assert batch is not None and batch["spec"]["connections"] == body["connections"]
    status = client.get(f"/task_status/{body['task_id']}").json()
    assert status["kind"] == "batch" and status["status"] == "queued" and status["active"]
    assert status["connections"] == body["connections"] and status["completed"] == []
    assert status["started_at"] and status["canceled"] is False
    assert client.post(f"/cancel_task/{body['task_id']}").status_code == 200
    assert get_obj(namespace, "pbatch", body["task_id"])["spec"]["cancelRequested"] is True  # type: ignore[index]
    patch_status(
        namespace,
        "pbatch",
        body["task_id"],
        {"state": "cancelled", "completed": ["c-one"], "finishedAt": NOW, "startedAt": NOW},
    )
    wait_for(
        lambda: client.get(f"/task_status/{body['task_id']}").json()["status"] == "cancelled",
        "batch cancelled",
    )
    assert client.post(f"/cancel_task/{body['task_id']}").status_code == 404


def test_api_restart_keeps_tasks(namespace: str, conns: list[str]) -> None:
    """Task ids are object names: a new API process answers for them, and results arrive."""
    first = ApiServer(namespace, key=API_KEY)
    first.start()
    first.wait_healthy()
    with first.client() as c:
        wait_for(lambda: "c-two" in names(c.get("/connections")), "c-two")
        run_id = c.post("/connections/c-two/run_async").json()["task_id"]
        # a synchronous request in flight when the API dies
        outcome: dict[str, object] = {}

        def sync_request() -> None:
            try:
                outcome["response"] = c.post("/connections/c-queue/run", timeout=60)
            except httpx.TransportError as exc:
                outcome["error"] = exc

        sync_thread = threading.Thread(target=sync_request)
        sync_thread.start()
        sync_run = wait_for(
            lambda: [
                r["metadata"]["name"]
                for r in kubectl_json("get", "prun", "-n", namespace)["items"]
                if r["spec"]["connectionName"] == "c-queue" and "status" not in r
            ],
            "the synchronous request's run",
        )[0]
    first.kill()
    sync_thread.join(30)
    assert "error" in outcome, outcome  # the client lost its answer, not the run
    second = ApiServer(namespace, key=API_KEY)
    second.start()
    try:
        second.wait_healthy()
        with second.client() as c:
            for task in (run_id, sync_run):
                body = c.get(f"/task_status/{task}").json()
                assert body["status"] == "queued" and body["active"] is True, body
            patch_status(namespace, "prun", run_id, finished_status())
            patch_status(namespace, "prun", sync_run, finished_status())
            for task in (run_id, sync_run):
                done = wait_for(
                    lambda t=task: (s := c.get(f"/task_status/{t}").json())["result"] and s,
                    "result after restart",
                )
                assert done["result"]["success"] is True and done["result"]["rows_inserted"] == 42
    finally:
        second.stop()
