"""kwok's fake nodes on the local cluster (hack/kwok.sh, stages in hack/kwok/): a runner pod
scheduled there "runs" and finishes with the runner's JSON result in its termination message,
and the real Job controller completes or fails its Job — while pods that do not tolerate the
fake nodes' taint never land there (the cluster is shared with every other test).

Nothing runs in a container on the fake nodes: the image is never pulled (imagePullPolicy
Never), only named.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from datapipelines.operator.status import parse_termination_message
from datapipelines.runner.result import RunResult
from tests.support.cluster import HACK, NODE_NAME, REPO_ROOT, RUNNER_IMAGE, kubectl
from tests.support.kube import create_namespace, delete_namespace, get_obj, kubectl_apply
from tests.support.waiting import wait_for

# generous: the first test may wait for kwok to be built (~1.5 min cold); the tests take ~7 s
pytestmark = [pytest.mark.cluster, pytest.mark.timeout(600)]

KWOK_SH = HACK / "kwok.sh"
NODE_PREFIX = "kwok-node-"
TAINT = {"key": "kwok.x-k8s.io/node", "operator": "Equal", "value": "fake", "effect": "NoSchedule"}
# what the real runner writes to its termination message (runner-image/…/result.py)
RESULT_KEYS = {
    "success",
    "durationMs",
    "rowsInserted",
    "recordsReported",
    "progressCounts",
    "error",
    "report",
    "reportTruncated",
    "loadId",
}


@pytest.fixture(scope="module")
def kwok() -> list[str]:
    """kwok up (idempotent: at once when it already runs); the names of its Ready fake nodes."""
    proc = subprocess.run(
        [str(KWOK_SH), "up"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=1800,  # builds kwok first on a fresh machine (~1 min)
    )
    print(proc.stdout)
    if proc.returncode != 0:
        pytest.fail(f"hack/kwok.sh up failed (exit {proc.returncode}):\n{proc.stdout[-6000:]}")
    nodes = json.loads(kubectl("get", "nodes", "-l", "type=kwok", "-o", "json").stdout)["items"]
    names = sorted(n["metadata"]["name"] for n in nodes)
    assert names and all(n.startswith(NODE_PREFIX) for n in names), names
    return names


@pytest.fixture
def ns(kwok: list[str]) -> Iterator[str]:
    name = create_namespace("kwok")
    yield name
    delete_namespace(name)


def runner_job(name: str, ns: str, annotations: dict[str, str], backoff_limit: int = 0) -> Any:
    """A Job shaped like the operator's (restartPolicy Never, podReplacementPolicy Failed, the
    same podFailurePolicy), whose pod tolerates the fake nodes' taint and selects them."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "backoffLimit": backoff_limit,
            "activeDeadlineSeconds": 300,
            "podReplacementPolicy": "Failed",
            "podFailurePolicy": {
                "rules": [
                    {
                        "action": "FailJob",
                        "onExitCodes": {
                            "containerName": "runner",
                            "operator": "In",
                            "values": [2],
                        },
                    },
                    {
                        "action": "Ignore",
                        "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
                    },
                ]
            },
            "template": {
                "metadata": {"annotations": annotations},
                "spec": {
                    "restartPolicy": "Never",
                    "hostNetwork": True,
                    "nodeSelector": {"type": "kwok"},
                    "tolerations": [TAINT],
                    "containers": [
                        {
                            "name": "runner",
                            "image": RUNNER_IMAGE,
                            "imagePullPolicy": "Never",
                            "terminationMessagePolicy": "File",
                        }
                    ],
                },
            },
        },
    }


def job_condition(ns: str, name: str) -> str | None:
    """`Complete:<reason>` or `Failed:<reason>` once the Job controller decided, else None."""
    job = get_obj(ns, "job", name) or {}
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond["type"] in ("Complete", "Failed") and cond["status"] == "True":
            return f"{cond['type']}:{cond.get('reason') or ''}"
    return None


def job_pods(ns: str, name: str) -> list[dict[str, Any]]:
    out = kubectl("get", "pods", "-n", ns, "-l", f"job-name={name}", "-o", "json").stdout
    return json.loads(out)["items"]  # type: ignore[no-any-return]


def runner_result(message: str) -> dict[str, Any]:
    """The JSON result in a termination message: the operator accepts it as a runner's result,
    the runner's own model validates it, and it has exactly the real runner's fields."""
    assert parse_termination_message(message) is not None, f"the operator refuses {message}"
    result: dict[str, Any] = json.loads(message)
    assert set(result) == RESULT_KEYS, result
    aliases = {str(field.alias) for field in RunResult.model_fields.values()}
    assert aliases >= RESULT_KEYS, f"the runner's result model changed: {sorted(aliases)}"
    RunResult.model_validate(result)
    return result


def terminated(pod: dict[str, Any]) -> dict[str, Any]:
    (status,) = pod["status"]["containerStatuses"]
    return status["state"]["terminated"]  # type: ignore[no-any-return]


def test_runner_pod_on_a_fake_node_completes_its_job_with_the_runner_result(
    kwok: list[str], ns: str
) -> None:
    annotations = {"datapipelines.io/kwok-duration": "1500ms", "datapipelines.io/kwok-rows": "42"}
    kubectl_apply(runner_job("ok", ns, annotations))

    assert wait_for(lambda: job_condition(ns, "ok"), "the Job to finish", 45).startswith("Complete")
    (pod,) = job_pods(ns, "ok")
    assert pod["spec"]["nodeName"] in kwok
    assert pod["status"]["phase"] == "Succeeded"
    state = terminated(pod)
    assert state["exitCode"] == 0 and state["reason"] == "Completed"

    result = runner_result(state["message"])
    assert result["success"] is True
    assert result["durationMs"] == 1500
    assert result["rowsInserted"] == 42 and result["recordsReported"] == 42
    assert result["progressCounts"] == {"extract": {"items": 42}}
    assert result["error"] is None
    assert result["report"] == "simulated by kwok"
    assert result["reportTruncated"] is False
    assert isinstance(result["loadId"], str) and result["loadId"]


def test_failing_variant_fails_the_job(kwok: list[str], ns: str) -> None:
    failing = {
        "datapipelines.io/kwok-result": "failure",
        "datapipelines.io/kwok-duration": "300ms",
        "datapipelines.io/kwok-error": "source: HTTP 500 from /items",
    }
    kubectl_apply(runner_job("fails", ns, failing))
    # exit code 2 (bad configuration) matches the operator's FailJob rule
    kubectl_apply(runner_job("bad-config", ns, {**failing, "datapipelines.io/kwok-exit-code": "2"}))

    assert wait_for(lambda: job_condition(ns, "fails"), "the Job to fail", 45) == (
        "Failed:BackoffLimitExceeded"
    )
    (pod,) = job_pods(ns, "fails")
    assert pod["spec"]["nodeName"] in kwok
    assert pod["status"]["phase"] == "Failed"
    state = terminated(pod)
    assert state["exitCode"] == 1 and state["reason"] == "Error"
    result = runner_result(state["message"])
    assert result["success"] is False
    assert result["error"] == "source: HTTP 500 from /items"
    assert result["rowsInserted"] == 0 and result["loadId"] is None
    assert result["durationMs"] == 300

    assert wait_for(lambda: job_condition(ns, "bad-config"), "the Job to fail", 45) == (
        "Failed:PodFailurePolicy"
    )
    (pod,) = job_pods(ns, "bad-config")
    assert terminated(pod)["exitCode"] == 2


def test_deleting_a_running_job_removes_its_pod_from_the_fake_node(
    kwok: list[str], ns: str
) -> None:
    kubectl_apply(runner_job("long", ns, {"datapipelines.io/kwok-duration": "10m"}))

    def running() -> dict[str, Any] | None:
        pods = job_pods(ns, "long")
        return pods[0] if pods and pods[0]["status"].get("phase") == "Running" else None

    pod = wait_for(running, "the pod to run", 45)
    assert pod["spec"]["nodeName"] in kwok
    kubectl("delete", "job", "long", "-n", ns, "--cascade=background", "--wait=false")
    # a kubelet would stop the container and delete the pod; kwok does the same, and the Job
    # controller lets go of its finalizer
    wait_for(
        lambda: get_obj(ns, "pod", pod["metadata"]["name"]) is None,
        "the deleted Job's pod to be gone",
        45,
    )


def test_pods_without_the_toleration_never_land_on_a_fake_node(kwok: list[str], ns: str) -> None:
    # selects the fake nodes but does not tolerate their taint: unschedulable
    kubectl_apply(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "no-toleration", "namespace": ns},
            "spec": {
                "restartPolicy": "Never",
                "hostNetwork": True,
                "nodeSelector": {"type": "kwok"},
                "containers": [
                    {"name": "runner", "image": RUNNER_IMAGE, "imagePullPolicy": "Never"}
                ],
            },
        }
    )
    # no selector, no toleration: only the real node fits (the empty fake nodes would score
    # higher) — the pause image cluster.sh imports on every start, so it really runs there
    kubectl_apply(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "anywhere", "namespace": ns},
            "spec": {
                "restartPolicy": "Never",
                "hostNetwork": True,
                "terminationGracePeriodSeconds": 1,
                "containers": [
                    {
                        "name": "pause",
                        "image": "localhost/pause:3.10-dp",
                        "imagePullPolicy": "Never",
                    }
                ],
            },
        }
    )

    def unschedulable() -> str | None:
        pod = get_obj(ns, "pod", "no-toleration") or {}
        for cond in (pod.get("status") or {}).get("conditions") or []:
            if cond["type"] == "PodScheduled" and cond.get("reason") == "Unschedulable":
                return str(cond.get("message"))
        return None

    message = wait_for(unschedulable, "the scheduler to refuse the pod", 30)
    assert "untolerated taint" in message and "kwok.x-k8s.io/node" in message, message
    assert not (get_obj(ns, "pod", "no-toleration") or {})["spec"].get("nodeName")

    def placed() -> str | None:
        return ((get_obj(ns, "pod", "anywhere") or {}).get("spec") or {}).get("nodeName")

    assert wait_for(placed, "the scheduler to place the pod", 30) == NODE_NAME


def test_second_up_finds_kwok_running(kwok: list[str]) -> None:
    out = subprocess.run(
        [str(KWOK_SH), "up"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert "kwok already up" in out.stderr
    status = subprocess.run(
        [str(KWOK_SH), "status"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    assert status.returncode == 0, status.stdout + status.stderr
    assert "running (pid" in status.stdout
    for name in kwok:
        assert name in status.stdout
