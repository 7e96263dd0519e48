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


def forged_pod(run: str, conn: str, job: dict[str, Any]) -> dict[str, Any]:
    """A pod the run's Job counts (its selector labels and a controller reference): it writes
    2,000 nested '[' (under 4 KiB; json.loads raises RecursionError on them) and fails."""
    uid = job["metadata"]["uid"]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{run}-craft",
            "labels": {
                LABEL_RUN: run,
                LABEL_CONNECTION: conn,
                "batch.kubernetes.io/controller-uid": uid,
                "batch.kubernetes.io/job-name": run,
                "controller-uid": uid,
                "job-name": run,
            },
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "name": run,
                    "uid": uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
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
async def test_a_crafted_termination_message_fails_its_run_and_the_next_run_starts(
    cluster: Cluster, operator: OperatorProcess
) -> None:
    await cluster.connection("demo", runner=STUCK, retries=0, startTimeoutSeconds=600)
    await cluster.run("demo-crafted", "demo")

    async def job() -> dict[str, Any] | None:
        return await cluster.job("demo-crafted")

    created = await wait_until(job, 60, what="the run's Job")
    await cluster.kube.request(
        "POST",
        f"/api/v1/namespaces/{cluster.ns}/pods",
        body=forged_pod("demo-crafted", "demo", created),
    )
    run = await cluster.wait_phase("demo-crafted", "Failed", seconds=180)
    error = run["status"]["result"]["error"]
    assert error.startswith("BackoffLimitExceeded"), error
    assert "ExitCode1: runner exited with code 1" in error
    # the connection is not jammed: its next run is dispatched (a Job exists for it)
    await cluster.run("demo-next", "demo")

    async def next_job() -> dict[str, Any] | None:
        return await cluster.job("demo-next")

    await wait_until(next_job, 60, what="the next run's Job")
    assert "RecursionError" not in operator.logs()


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
