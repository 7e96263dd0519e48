"""Input that once jammed a connection, on the real cluster: a crafted termination message from
a pod the run's Job counts, and a Job create refused by a ResourceQuota (403)."""

from __future__ import annotations

from typing import Any

import pytest

from datapipelines.resources import LABEL_CONNECTION, LABEL_RUN
from tests.integration.operator.opcluster import Cluster
from tests.support.cluster import RUNNER_IMAGE
from tests.support.processes import NEVER_PULLED_REPO, OperatorProcess
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.asyncio(loop_scope="session")]

STUCK = {"image": f"{NEVER_PULLED_REPO}:none"}
RESTRICTED = {
    "runAsNonRoot": True,
    "runAsUser": 10001,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def crafted_pod(run: str, conn: str) -> dict[str, Any]:
    """A pod with the run's labels, made by someone who may create pods but is not the run's
    Job: it writes 2,000 nested '[' as its termination message (under 4 KiB; json.loads raises
    RecursionError on them) and fails."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"{run}-craft", "labels": {LABEL_RUN: run, LABEL_CONNECTION: conn}},
        "spec": {
            "restartPolicy": "Never",
            "hostNetwork": True,
            "automountServiceAccountToken": False,
            "containers": [
                {
                    "name": "runner",
                    "image": RUNNER_IMAGE,
                    "imagePullPolicy": "Never",
                    "command": [
                        "/opt/venv/bin/python",
                        "-c",
                        "open('/dev/termination-log', 'w').write('[' * 2000); raise SystemExit(1)",
                    ],
                    "securityContext": RESTRICTED,
                }
            ],
        },
    }


@pytest.mark.pods
async def test_a_crafted_termination_message_fails_no_reconcile_and_the_next_run_starts(
    cluster: Cluster, operator: OperatorProcess
) -> None:
    # the source is unreachable: the real runner fails its run with the reason
    await cluster.connection("demo", retries=0, timeoutSeconds=120)
    await cluster.kube.request(
        "POST", f"/api/v1/namespaces/{cluster.ns}/pods", body=crafted_pod("demo-crafted", "demo")
    )

    async def crafted_terminated() -> bool:
        pod = await cluster.kube.request(
            "GET", f"/api/v1/namespaces/{cluster.ns}/pods/demo-crafted-craft"
        )
        states = [
            c.get("state", {}) for c in (pod or {}).get("status", {}).get("containerStatuses", [])
        ]
        return any("terminated" in s for s in states)

    await wait_until(crafted_terminated, 120, what="the crafted pod to terminate")
    await cluster.run("demo-crafted", "demo")
    run = await cluster.wait_phase("demo-crafted", "Succeeded", "Failed", seconds=180)
    status = run["status"]
    assert status["phase"] == "Failed", status
    error = status["result"]["error"]
    assert "127.0.0.1:9" in error or "Connection refused" in error, error
    assert "[[[[" not in str(status), "a pod the run's Job does not control was counted"
    # the connection is not jammed: its next run is dispatched
    await cluster.run("demo-next", "demo")

    async def next_job() -> dict[str, Any] | None:
        return await cluster.job("demo-next")

    await wait_until(next_job, 60, what="the next run's Job")
    assert "RecursionError" not in operator.logs()
    assert "reconcile of" not in operator.logs(), "a reconcile failed"


async def test_a_job_refused_by_a_resource_quota_fails_the_run_with_the_reason(
    cluster: Cluster, operator: OperatorProcess
) -> None:
    await cluster.kube.request(
        "POST",
        f"/api/v1/namespaces/{cluster.ns}/resourcequotas",
        body={
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": {"name": "no-jobs"},
            "spec": {"hard": {"count/jobs.batch": "0"}},
        },
    )
    await cluster.connection("demo", runner=STUCK, startTimeoutSeconds=10)
    await cluster.run("demo-quota", "demo")
    queued = await cluster.wait_phase("demo-quota", "Queued", "Failed", seconds=60)
    conds = {c["type"]: c for c in queued["status"].get("conditions", [])}
    if queued["status"]["phase"] == "Queued":
        assert "JobQuotaExceeded" in str(conds), conds
    run = await cluster.wait_phase("demo-quota", "Failed", seconds=90)
    error = run["status"]["result"]["error"]
    assert error.startswith("JobQuotaExceeded: the Kubernetes API refused the run's Job"), error
    assert "exceeded quota" in error and "startTimeoutSeconds" in error
    reasons = {e["reason"] for e in await cluster.events("demo")}
    assert "JobQuotaExceeded" in reasons
    assert await cluster.job("demo-quota") is None
