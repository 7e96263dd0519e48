"""Live progress and the runner's report reach the run's status through the real apiserver, with
the chart's runner RBAC and admission policy (rendered by helm), authenticated as the runner's
pod: its service-account token bound to a pod named after the run."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.runner.runnerkit import duckdb_destination, rest_resource, rest_spec
from tests.integration.trust.chartkit import Release, installed
from tests.support.cluster import API_SERVER, STATE_DIR, kubectl
from tests.support.kube import kubectl_apply, kubectl_json
from tests.support.processes import free_port

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def release(kubeconfig: Path, crds: None) -> Iterator[Release]:
    with installed("dp-progress") as rel:
        yield rel


def runner_identity(release: Release, run: str, tmp_path: Path) -> dict[str, str]:
    """A PipelineRun ``run``, a pod named the way its Job's pod would be, and the environment a
    runner in that pod has (its bound token and the cluster's CA in a service-account dir)."""
    ns = release.namespace
    kubectl_apply(
        {
            "apiVersion": "datapipelines.io/v1alpha1",
            "kind": "PipelineRun",
            "metadata": {"name": run, "namespace": ns},
            "spec": {"connectionName": "live"},
        }
    )
    pod = f"{run}-{uuid.uuid4().hex[:5]}"
    kubectl_apply(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": pod, "namespace": ns},
            "spec": {
                "serviceAccountName": "datapipelines-runner",
                "nodeName": "no-such-node",
                "containers": [
                    {"name": "runner", "image": "localhost/datapipelines-never-pulled:none"}
                ],
            },
        }
    )
    uid = kubectl_json("get", "pod", pod, "-n", ns)["metadata"]["uid"]
    token = kubectl(
        "create",
        "token",
        "datapipelines-runner",
        "-n",
        ns,
        "--bound-object-kind=Pod",
        f"--bound-object-name={pod}",
        f"--bound-object-uid={uid}",
        "--duration=10m",
    ).stdout.strip()
    sa = tmp_path / f"sa-{run}"
    sa.mkdir()
    (sa / "token").write_text(token + "\n")
    (sa / "ca.crt").write_bytes((STATE_DIR / "pki" / "ca.crt").read_bytes())
    return {
        "DATAPIPELINES_RUN_NAME": run,
        "DATAPIPELINES_NAMESPACE": ns,
        "DATAPIPELINES_POD_NAME": pod,
        "DATAPIPELINES_KUBE_API": API_SERVER,
        "DATAPIPELINES_SERVICEACCOUNT_DIR": str(sa),
    }


class Watcher:
    """Records the run's status.progress as the apiserver holds it, while the runner runs."""

    def __init__(self, ns: str, run: str) -> None:
        self.ns, self.run = ns, run
        self.seen: list[dict[str, Any]] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                obj = kubectl_json("get", "prun", self.run, "-n", self.ns)
            except Exception as exc:  # a slow or failed kubectl must not end the watch
                self.errors.append(str(exc))
                continue
            status = obj.get("status") or {}
            if status.get("progress") and status["progress"] not in self.seen:
                self.seen.append(status["progress"])
            time.sleep(0.1)

    def __enter__(self) -> Watcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def test_progress_and_report_reach_the_run_status(http_source, runner, release, tmp_path):
    env = runner_identity(release, "live-x7k2p", tmp_path)
    http_source.state.delay_ms = 500  # 10 pages: ~5 s of extraction, two or more progress patches
    spec = rest_spec(http_source.url, duckdb_destination(tmp_path / "p.duckdb"))
    with Watcher(release.namespace, "live-x7k2p") as watcher:
        outcome = runner.run(spec, name="live", **env)
    assert outcome.exit_code == 0, outcome.error

    status = kubectl_json("get", "prun", "live-x7k2p", "-n", release.namespace)["status"]
    live = [p for p in watcher.seen if p.get("stage") == "extract"]
    assert any(0 < p["recordsExtracted"] < 1000 for p in live), (watcher.seen, watcher.errors)
    final = status["runnerResult"]
    assert final["success"] is True and final["rowsInserted"] == 1000
    assert final["podName"] == env["DATAPIPELINES_POD_NAME"]
    assert final["report"] and "rows inserted: 1000" in final["report"]
    assert status["progress"]["stage"] == "done" and status["progress"]["recordsExtracted"] == 1000
    assert "phase" not in status and "result" not in status  # the operator's, never the runner's


def test_a_refusing_apiserver_never_fails_the_sync(http_source, runner, release, tmp_path):
    """Reporting on someone else's run is refused (403) by the admission policy; the sync goes
    on, and the result is in the termination message."""
    env = runner_identity(release, "live-abc", tmp_path)
    env["DATAPIPELINES_RUN_NAME"] = "someone-elses-run"
    spec = rest_spec(
        http_source.url,
        duckdb_destination(tmp_path / "p.duckdb"),
        resources=[rest_resource(page_size=50)],
    )
    outcome = runner.run(spec, name="live", **env)
    assert outcome.exit_code == 0, outcome.error
    assert outcome.result["rowsInserted"] == 1000
    status = kubectl_json("get", "prun", "live-abc", "-n", release.namespace).get("status") or {}
    assert "runnerResult" not in status and "progress" not in status


def test_unreachable_apiserver_never_fails_the_sync(http_source, runner, tmp_path):
    spec = rest_spec(http_source.url, duckdb_destination(tmp_path / "p.duckdb"))
    sa = tmp_path / "sa"
    sa.mkdir()
    (sa / "token").write_text("a-token\n")
    outcome = runner.run(
        spec,
        name="live",
        DATAPIPELINES_RUN_NAME="live-abc",
        DATAPIPELINES_KUBE_API=f"https://127.0.0.1:{free_port()}",
        DATAPIPELINES_SERVICEACCOUNT_DIR=str(sa),
    )
    assert outcome.exit_code == 0, outcome.error
    assert outcome.result["rowsInserted"] == 1000
    json.dumps(outcome.result)  # the termination message is the result
