"""A runner reports only on its own run, and only its own fields — enforced by the apiserver
(the chart's RBAC and ValidatingAdmissionPolicy), tested with real bound service-account tokens
of real pods."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.integration.trust.chartkit import Release
from tests.support.cluster import API_SERVER, STATE_DIR, kubectl
from tests.support.kube import kubectl_apply, kubectl_json
from tests.support.waiting import wait_for

pytestmark = pytest.mark.cluster

CA = STATE_DIR / "pki" / "ca.crt"


def run_manifest(name: str, ns: str) -> dict[str, Any]:
    return {
        "apiVersion": "datapipelines.io/v1alpha1",
        "kind": "PipelineRun",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"connectionName": "c1", "trigger": "manual"},
    }


def pod_of(run: str, ns: str) -> dict[str, Any]:
    """A pod named the way the Job controller names a run's pods (<run>-<5 characters>)."""
    suffix = uuid.uuid4().hex[:5]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"{run}-{suffix}", "namespace": ns},
        "spec": {
            "serviceAccountName": "datapipelines-runner",
            "nodeName": "no-such-node",  # never runs: only its identity matters
            "containers": [
                {"name": "runner", "image": "localhost/datapipelines-never-pulled:none"}
            ],
        },
    }


def bound_token(ns: str, pod: dict[str, Any], account: str = "datapipelines-runner") -> str:
    """``account``'s token bound to ``pod``, as the kubelet projects it into the pod."""
    obj = kubectl_json("get", "pod", pod["metadata"]["name"], "-n", ns)
    return kubectl(
        "create",
        "token",
        account,
        "-n",
        ns,
        "--bound-object-kind=Pod",
        f"--bound-object-name={obj['metadata']['name']}",
        f"--bound-object-uid={obj['metadata']['uid']}",
        "--duration=10m",
    ).stdout.strip()


@pytest.fixture(scope="module")
def runs(release: Release) -> Iterator[dict[str, str]]:
    ns = release.namespace
    kubectl_apply([run_manifest("run-a", ns), run_manifest("run-b", ns)])
    # the operator's part (as admin): run-a is Running, run-b has Succeeded
    for name, phase in (("run-a", "Running"), ("run-b", "Succeeded")):
        kubectl(
            "patch",
            "prun",
            name,
            "-n",
            ns,
            "--subresource=status",
            "--type=merge",
            "-p",
            json.dumps({"status": {"phase": phase}}),
        )
    pod = pod_of("run-a", ns)
    kubectl_apply(pod)
    wait_for(lambda: kubectl_json("get", "sa", "datapipelines-runner", "-n", ns), "runner SA")
    yield {"ns": ns, "token": bound_token(ns, pod), "pod": pod["metadata"]["name"]}


def patch_status(ns: str, run: str, token: str, status: dict[str, Any]) -> httpx.Response:
    url = f"{API_SERVER}/apis/datapipelines.io/v1alpha1/namespaces/{ns}/pipelineruns/{run}/status"
    return httpx.patch(
        url,
        content=json.dumps({"status": status}),
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/merge-patch+json",
        },
        verify=str(CA),
        timeout=30,
    )


PROGRESS = {"progress": {"stage": "extract", "recordsExtracted": 10}}


def test_the_runner_reports_progress_and_its_result_on_its_own_run(runs: dict[str, str]) -> None:
    ok = patch_status(runs["ns"], "run-a", runs["token"], PROGRESS)
    assert ok.status_code == 200, ok.text
    final = {"runnerResult": {"success": True, "rowsInserted": 10, "podName": runs["pod"]}}
    ok = patch_status(runs["ns"], "run-a", runs["token"], final)
    assert ok.status_code == 200, ok.text
    assert ok.json()["status"]["phase"] == "Running"


def test_the_runner_of_run_a_cannot_patch_run_b(runs: dict[str, str]) -> None:
    refused = patch_status(runs["ns"], "run-b", runs["token"], PROGRESS)
    assert refused.status_code == 403, refused.text
    assert (
        f"runner pod {runs['pod']} may only report on its own run, not on run run-b" in refused.text
    )
    assert kubectl_json("get", "prun", "run-b", "-n", runs["ns"])["status"].get("progress") is None


@pytest.mark.parametrize(
    "forged",
    [
        {"phase": "Succeeded"},
        {"phase": None},
        {"jobName": "someone-elses-job"},
        {"result": {"success": True, "rowsInserted": 1_000_000}},
        {"attempts": 0},
        {"conditions": []},
    ],
    ids=["phase", "phase-null", "jobName", "result", "attempts", "conditions"],
)
def test_the_runner_cannot_write_the_operators_fields(runs: dict[str, str], forged: dict) -> None:
    before = kubectl_json("get", "prun", "run-a", "-n", runs["ns"])["status"]
    refused = patch_status(runs["ns"], "run-a", runs["token"], forged)
    assert refused.status_code == 403, refused.text
    assert "may write only status.progress and status.runnerResult" in refused.text
    after = kubectl_json("get", "prun", "run-a", "-n", runs["ns"])["status"]
    assert after.get("phase") == before.get("phase") == "Running"


def test_a_token_that_names_no_pod_is_refused(runs: dict[str, str]) -> None:
    plain = kubectl("create", "token", "datapipelines-runner", "-n", runs["ns"]).stdout.strip()
    refused = patch_status(runs["ns"], "run-a", plain, PROGRESS)
    assert refused.status_code == 403
    assert "service-account token of its own pod" in refused.text


def test_impersonating_the_runner_cannot_forge_a_finished_run(runs: dict[str, str]) -> None:
    """The issue's own attempt: kubectl --as the runner's ServiceAccount."""
    ns = runs["ns"]
    proc = kubectl(
        f"--as=system:serviceaccount:{ns}:datapipelines-runner",
        "patch",
        "prun",
        "run-b",
        "-n",
        ns,
        "--subresource=status",
        "--type=merge",
        "-p",
        '{"status":{"phase":"Running"}}',
        check=False,
    )
    assert proc.returncode != 0 and "forbidden" in proc.stderr.lower(), proc.stderr
    assert kubectl_json("get", "prun", "run-b", "-n", ns)["status"]["phase"] == "Succeeded"


def test_the_runner_reads_no_run_and_no_secret(release: Release) -> None:
    ns, sa = release.namespace, release.sa("runner")
    for verb, what in (
        ("get", "pipelineruns"),
        ("list", "pipelineruns"),
        ("get", "secrets"),
        ("patch", "pipelineruns"),
        ("create", "pods"),
    ):
        proc = kubectl("auth", "can-i", verb, what, "-n", ns, f"--as={sa}", check=False)
        assert proc.stdout.strip() == "no", (verb, what, proc.stdout)
