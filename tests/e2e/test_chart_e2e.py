"""End to end: the Helm chart installed on the real local cluster, its operator and API as pods
(images built locally), runner pods doing real syncs, driven through the REST API only."""

from __future__ import annotations

import base64
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from datapipelines.runner.demo_source import DemoState
from tests.support.cluster import KUBECONFIG, kubectl
from tests.support.http_source import HttpSource, demo_source_spec, serve_demo_source
from tests.support.kube import connection, get_obj, kubectl_apply
from tests.support.release import install_release, uninstall_release
from tests.support.tools import REPO_ROOT, helm_binary
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.pods]

CHART = REPO_ROOT / "deploy" / "helm" / "datapipelines"
RECORDS = 3000


def helm(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    cmd = [str(helm_binary()), "--kubeconfig", str(KUBECONFIG), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"helm {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def source() -> Iterator[HttpSource]:
    with serve_demo_source(DemoState(records=RECORDS, page_size=100)) as src:
        yield src


@pytest.fixture(scope="module")
def release(kubeconfig: Path, images: Any, crds: None) -> Iterator[dict[str, Any]]:
    installed = install_release("e2e-chart")
    try:
        yield {
            "ns": installed.ns,
            "port": installed.port,
            "key": installed.key,
            "sets": list(installed.sets),
        }
    finally:
        uninstall_release(installed)


@pytest.fixture(scope="module")
def client(release: dict[str, Any]) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=f"http://127.0.0.1:{release['port']}",
        headers={"X-API-Key": release["key"]},
        timeout=300,
    ) as c:
        wait_for(lambda: c.get("/readyz").status_code == 200, "the API pod to be ready", 120)
        yield c


def test_api_pod_enforces_the_key(release: dict[str, Any], client: httpx.Client) -> None:
    url = f"http://127.0.0.1:{release['port']}/connections"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"X-API-Key": "wrong"}).status_code == 401
    assert client.get("/connections").status_code == 200


def test_sync_run_through_the_chart(
    release: dict[str, Any], client: httpx.Client, source: HttpSource
) -> None:
    ns = release["ns"]
    kubectl_apply(connection("e2e-items", ns, source=demo_source_spec(source.url)))
    wait_for(
        lambda: any(c["name"] == "e2e-items" for c in client.get("/connections").json()),
        "the connection in the API's cache",
    )
    body = client.post("/connections/e2e-items/run", params={"include_report": "true"}).json()
    assert body["success"] is True, body
    assert body["rows_inserted"] == RECORDS
    assert body["records_reported"] == RECORDS
    assert body["attempts"] == 1
    assert "rows inserted" in body["report"]
    run = get_obj(ns, "pipelinerun", body["run_id"])
    assert run is not None and run["status"]["phase"] == "Succeeded"
    # The run's Job ran in a real pod of the runner image.
    job = get_obj(ns, "job", run["status"]["jobName"])
    assert job is not None and job["status"].get("succeeded") == 1
    status = client.get("/connections/e2e-items/status").json()
    assert status["last_run_success"] is True
    history = client.get("/history", params={"limit": 5}).json()
    assert history[0]["run_id"] == body["run_id"]


def test_cancel_a_slow_run_through_the_chart(
    release: dict[str, Any], client: httpx.Client, source: HttpSource
) -> None:
    ns = release["ns"]
    source.state.delay_ms = 200  # 30 pages x 200 ms: slow enough to cancel
    try:
        kubectl_apply(connection("e2e-slow", ns, source=demo_source_spec(source.url)))
        wait_for(
            lambda: any(c["name"] == "e2e-slow" for c in client.get("/connections").json()),
            "the connection in the API's cache",
        )
        task = client.post("/connections/e2e-slow/run_async").json()["task_id"]
        wait_for(
            lambda: client.get(f"/task_status/{task}").json()["status"] == "running",
            "the slow run to start",
            120,
        )
        assert client.post(f"/cancel_task/{task}").status_code == 200
        final = wait_for(
            lambda: (s := client.get(f"/task_status/{task}").json())["active"] is False and s,
            "the cancelled run to end",
            120,
        )
        assert final["status"] == "cancelled"
        assert final["canceled"] is True
        assert client.post(f"/cancel_task/{task}").status_code == 404
    finally:
        source.state.delay_ms = 0


def test_upgrade_keeps_the_generated_key(release: dict[str, Any]) -> None:
    ns = release["ns"]
    helm("upgrade", "dp", str(CHART), "-n", ns, *release["sets"], "--wait", "--timeout", "4m")
    secret = kubectl(
        "get", "secret", "dp-datapipelines-api-key", "-n", ns, "-o", "jsonpath={.data.api-key}"
    ).stdout
    assert base64.b64decode(secret).decode() == release["key"]
