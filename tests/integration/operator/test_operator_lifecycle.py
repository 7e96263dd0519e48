"""The operator against the real apiserver, without needing runner pods to run.

Runner pods here use an image that is never pulled (pull policy Never), so a started run stays
Running until the test acts: cancel, Job deletion, restart, concurrency, schedule, retention,
batches, leader election.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from datapipelines.resources import CONNECTION_PLURAL
from tests.integration.operator.opcluster import Cluster
from tests.support.processes import NEVER_PULLED_REPO, OperatorProcess
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.asyncio(loop_scope="session")]

STUCK = {"image": f"{NEVER_PULLED_REPO}:none"}


def msg(run: dict) -> str:
    return next(c for c in run["status"]["conditions"] if c["type"] == "Succeeded")["message"]


async def test_run_becomes_exactly_one_job(cluster: Cluster, operator: OperatorProcess) -> None:
    await cluster.connection("demo", runner=STUCK, retries=3, timeoutSeconds=120)
    await cluster.run("demo-r1", "demo")
    run = await cluster.wait_phase("demo-r1", "Running")
    assert run["status"]["jobName"] == "demo-r1" and run["status"]["startTime"]
    assert run["metadata"]["labels"]["datapipelines.io/connection"] == "demo"
    assert not run["metadata"].get("finalizers")
    assert "status" in run and "kopf" not in run["status"]
    job = await cluster.job("demo-r1")
    assert job is not None
    owner = job["metadata"]["ownerReferences"][0]
    assert owner["kind"] == "PipelineRun" and owner["uid"] == run["metadata"]["uid"]
    assert job["spec"]["backoffLimit"] == 3 and job["spec"]["activeDeadlineSeconds"] == 120
    pod = job["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True and pod["securityContext"]["runAsNonRoot"] is True
    assert [j["metadata"]["name"] for j in await cluster.jobs()] == ["demo-r1"]

    assert await cluster.active_runs("demo") == ["demo-r1"]
    conn = await cluster.get_connection("demo")
    ready = next(c for c in conn["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True"
    reasons = {e["reason"] for e in await cluster.events("demo-r1")}
    assert "Started" in reasons


async def test_forbid_fails_the_second_run(cluster: Cluster, operator: OperatorProcess) -> None:
    await cluster.connection("demo", runner=STUCK)
    await cluster.run("demo-a", "demo")
    await cluster.wait_phase("demo-a", "Running")
    await cluster.run("demo-b", "demo")
    run = await cluster.wait_phase("demo-b", "Failed")
    assert msg(run).startswith("ConcurrencyForbidden")
    assert run["status"]["result"]["success"] is False
    assert await cluster.job("demo-b") is None
    assert await cluster.phase("demo-a") == "Running"


async def test_queue_keeps_order_and_cancel(cluster: Cluster, operator: OperatorProcess) -> None:
    await cluster.connection("demo", runner=STUCK, concurrencyPolicy="Queue")
    for name in ("demo-3", "demo-1", "demo-2"):  # same second: request order, not name order
        await cluster.run(name, "demo")
    await cluster.wait_phase("demo-3", "Running")
    await cluster.wait_phase("demo-1", "Queued")
    await cluster.wait_phase("demo-2", "Queued")
    assert await cluster.active_runs("demo") == ["demo-3", "demo-1", "demo-2"]

    await cluster.cancel_run("demo-3")
    run3 = await cluster.wait_phase("demo-3", "Cancelled")
    assert run3["status"]["completionTime"]
    await wait_until(lambda: _gone(cluster, "demo-3"), 30, what="Job demo-3 deleted")
    await cluster.wait_phase("demo-1", "Running")
    assert await cluster.phase("demo-2") == "Queued"

    await cluster.cancel_run("demo-2")  # a queued run: cancelled without ever getting a Job
    await cluster.wait_phase("demo-2", "Cancelled")
    assert await cluster.job("demo-2") is None
    conn = await cluster.get_connection("demo")
    assert conn["status"]["lastRunName"] == "demo-3" and conn["status"]["lastRunSuccess"] is False
    assert await cluster.active_runs("demo") == ["demo-1"]


async def _gone(cluster: Cluster, job: str) -> bool:
    return await cluster.job(job) is None


async def test_replace_cancels_the_active_run(cluster: Cluster, operator: OperatorProcess) -> None:
    await cluster.connection("demo", runner=STUCK, concurrencyPolicy="Replace")
    await cluster.run("demo-old", "demo")
    await cluster.wait_phase("demo-old", "Running")
    await cluster.run("demo-new", "demo")
    old = await cluster.wait_phase("demo-old", "Cancelled")
    assert msg(old).startswith("Replaced: replaced by the newer run demo-new")
    await wait_until(lambda: _gone(cluster, "demo-old"), 30, what="Job demo-old deleted")
    await cluster.wait_phase("demo-new", "Running")


async def test_job_deleted_by_hand_fails_the_run(
    cluster: Cluster, operator: OperatorProcess
) -> None:
    await cluster.connection("demo", runner=STUCK)
    await cluster.run("demo-x", "demo")
    await cluster.wait_phase("demo-x", "Running")
    await cluster.delete_job("demo-x")
    run = await cluster.wait_phase("demo-x", "Failed")
    assert msg(run).startswith("JobDeleted")
    assert run["status"]["result"]["error"].startswith("JobDeleted")
    conn = await cluster.get_connection("demo")
    assert conn["status"]["lastRunSuccess"] is False
    assert conn["status"]["lastRunError"].startswith("JobDeleted")
    assert conn["status"]["lastRunName"] == "demo-x"


async def test_restart_reconciles_what_happened_while_down(
    cluster: Cluster, operator: OperatorProcess
) -> None:
    await cluster.connection("demo", runner=STUCK, concurrencyPolicy="Queue")
    await cluster.run("demo-1", "demo")
    await cluster.wait_phase("demo-1", "Running")
    operator.kill()
    # While the operator is down: its Job vanishes and another run is requested.
    await cluster.delete_job("demo-1")
    await cluster.run("demo-2", "demo")
    assert await cluster.phase("demo-1") == "Running"  # nobody acted while it was down
    operator.start()
    run1 = await cluster.wait_phase("demo-1", "Failed")
    assert msg(run1).startswith("JobDeleted")
    await cluster.wait_phase("demo-2", "Running")
    # Killed and restarted again mid-run: still exactly one Job for the run.
    operator.kill()
    operator.start()
    await operator.in_sync()
    assert await cluster.phase("demo-2") == "Running"
    assert sorted(j["metadata"]["name"] for j in await cluster.jobs()) == ["demo-2"]


async def test_run_of_invalid_connection_fails(cluster: Cluster, operator: OperatorProcess) -> None:
    await cluster.connection("demo", runner=STUCK, schedule="@daily", timeZone="Mars/Olympus")

    async def not_ready() -> dict | None:
        conn = await cluster.get_connection("demo")
        conds = {c["type"]: c for c in (conn.get("status") or {}).get("conditions", [])}
        ready = conds.get("Ready")
        return ready if ready and ready["status"] == "False" else None

    ready = await wait_until(not_ready, 30, what="Ready False")
    assert ready["reason"] == "InvalidTimeZone" and "Mars/Olympus" in ready["message"]
    await cluster.run("demo-1", "demo")
    run = await cluster.wait_phase("demo-1", "Failed")
    assert msg(run).startswith("ConnectionInvalid")


async def test_run_of_missing_connection_fails(
    cluster: Cluster, operator_factory: Callable[..., OperatorProcess]
) -> None:
    operator_factory(DATAPIPELINES_CONNECTION_GRACE_SECONDS="2").start()
    await cluster.run("ghost-1", "ghost")
    run = await cluster.wait_phase("ghost-1", "Failed", seconds=90)
    assert msg(run).startswith("ConnectionNotFound")


async def test_retention_keeps_history_limit_never_active(
    cluster: Cluster, operator: OperatorProcess
) -> None:
    await cluster.connection("demo", runner=STUCK, historyLimit=1)
    await cluster.run("demo-a", "demo")
    await cluster.wait_phase("demo-a", "Running")
    await cluster.run("demo-b", "demo")
    await cluster.wait_phase("demo-b", "Failed")
    await cluster.run("demo-c", "demo")
    await cluster.wait_phase("demo-c", "Failed")

    async def retained() -> list[str] | None:
        names = sorted(r["metadata"]["name"] for r in await cluster.runs())
        return names if names == ["demo-a", "demo-c"] else None

    await wait_until(retained, 30, what="demo-b deleted by retention")
    assert await cluster.phase("demo-a") == "Running"


async def test_schedule_tick_makes_one_run(cluster: Cluster, operator: OperatorProcess) -> None:
    await cluster.connection("sched", runner=STUCK, schedule="* * * * *")

    async def scheduled() -> list[dict] | None:
        runs = [r for r in await cluster.runs() if r["spec"].get("trigger") == "schedule"]
        return runs or None

    (run,) = await wait_until(scheduled, 90, interval=1, what="a scheduled run")
    tick = run["spec"]["scheduledTime"]
    assert run["metadata"]["name"].startswith("sched-")
    conn = await cluster.get_connection("sched")
    assert conn["status"]["lastScheduleTime"] == tick
    # A restart within the same minute must not make a second run for that tick.
    operator.kill()
    await cluster.kube.patch_status(
        cluster.ns, CONNECTION_PLURAL, "sched", {"lastScheduleTime": None}
    )
    operator.start()
    await operator.in_sync()
    runs = [r for r in await cluster.runs() if r["spec"].get("scheduledTime") == tick]
    assert len(runs) == 1


async def test_batch_runs_in_order_and_cancel_stops_it(
    cluster: Cluster, operator: OperatorProcess
) -> None:
    for name in ("a", "b", "c"):
        await cluster.connection(name, runner=STUCK)
    await cluster.batch("batch-1", ["b", "a", "c"])

    async def current(conn: str) -> dict | None:
        batch = await cluster.get_batch("batch-1")
        status = batch.get("status") or {}
        return status if status.get("current") == conn else None

    status = await wait_until(lambda: current("b"), 30, what="batch current b")
    assert status["state"] == "running" and status["completed"] == []
    first = status["runs"][0]["runName"]
    await cluster.wait_phase(first, "Running")
    assert [r["spec"]["connectionName"] for r in await cluster.runs()] == ["b"]

    await cluster.delete_job(first)  # b ends (Failed): the batch moves on to a
    status = await wait_until(lambda: current("a"), 30, what="batch current a")
    assert status["completed"] == ["b"]
    second = next(r["runName"] for r in status["runs"] if r["connection"] == "a")
    run = await cluster.wait_phase(second, "Running")
    assert run["spec"]["trigger"] == "batch"
    assert run["metadata"]["labels"]["datapipelines.io/batch"] == "batch-1"

    await cluster.cancel_batch("batch-1")
    await cluster.wait_phase(second, "Cancelled")

    async def cancelled() -> dict | None:
        batch = await cluster.get_batch("batch-1")
        status = batch.get("status") or {}
        return status if status.get("state") == "cancelled" else None

    status = await wait_until(cancelled, 30, what="batch cancelled")
    assert status["completed"] == ["b", "a"] and status.get("current") is None
    assert status["finishedAt"]
    assert sorted(r["spec"]["connectionName"] for r in await cluster.runs()) == ["a", "b"]


async def test_two_replicas_only_the_lease_holder_acts(
    cluster: Cluster, operator_factory: Callable[..., OperatorProcess]
) -> None:
    first = operator_factory(POD_NAME="replica-a").start()
    await first.leading()
    second = operator_factory(POD_NAME="replica-b").start()
    await cluster.connection("demo", runner=STUCK, concurrencyPolicy="Queue")
    await cluster.run("demo-1", "demo")
    await cluster.wait_phase("demo-1", "Running")
    lease = await cluster.kube.lease(cluster.ns, "datapipelines-operator")
    assert lease["spec"]["holderIdentity"] == "replica-a"

    async def standing_by() -> bool:
        return "standing by" in second.logs()

    await wait_until(standing_by, 20, what="replica-b standing by")
    assert "run " not in second.logs().split("standing by", 1)[1]

    first.kill()  # a crash: no release; the standby takes over after the lease duration
    await cluster.run("demo-2", "demo")
    await cluster.wait_phase("demo-2", "Queued", seconds=40)
    await cluster.cancel_run("demo-1")
    await cluster.wait_phase("demo-2", "Running", seconds=40)
    lease = await cluster.kube.lease(cluster.ns, "datapipelines-operator")
    assert lease["spec"]["holderIdentity"] == "replica-b"
    assert sorted(j["metadata"]["name"] for j in await cluster.jobs()) == ["demo-2"]
