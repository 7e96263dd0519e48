"""A run's whole life with real runner pods (the runner image, hostNetwork, the demo source)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.operator.opcluster import Cluster
from tests.support.http_source import HttpSource, demo_source_spec
from tests.support.processes import OperatorProcess
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.pods, pytest.mark.asyncio(loop_scope="session")]


def cond(run: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in run["status"]["conditions"] if c["type"] == "Succeeded")


async def test_run_succeeds_with_the_runners_result(
    cluster: Cluster, operator: OperatorProcess, http_source: HttpSource
) -> None:
    http_source.state.records = 500
    await cluster.connection("demo", url=http_source.url, retries=0, timeoutSeconds=300)
    await cluster.run("demo-ok", "demo")
    run = await cluster.wait_phase("demo-ok", "Succeeded", "Failed", seconds=240)
    status = run["status"]
    assert status["phase"] == "Succeeded", status
    assert cond(run)["status"] == "True" and cond(run)["reason"] == "Succeeded"
    assert status["attempts"] == 1 and status["jobName"] == "demo-ok"
    assert status["startTime"] and status["completionTime"]
    result = status["result"]
    assert result["success"] is True and not result.get("error")
    assert result["rowsInserted"] == 500 and result["durationMs"] > 0
    conn = await cluster.get_connection("demo")
    cs = conn["status"]
    assert cs["lastRunSuccess"] is True and cs["lastRunName"] == "demo-ok"
    assert cs["lastRunAttempts"] == 1 and cs["lastRunDurationMs"] == result["durationMs"]
    assert cs["lastRunAt"] == status["startTime"] and cs.get("activeRuns", []) == []
    reasons = {e["reason"] for e in await cluster.events("demo-ok")}
    assert {"Started", "Succeeded"} <= reasons


async def test_failure_with_retries_counts_attempts(
    cluster: Cluster, operator: OperatorProcess, http_source: HttpSource
) -> None:
    http_source.state.fail_from_page = 1
    await cluster.connection("demo", url=http_source.url, retries=1, timeoutSeconds=300)
    await cluster.run("demo-bad", "demo")
    run = await cluster.wait_phase("demo-bad", "Succeeded", "Failed", seconds=300)
    status = run["status"]
    assert status["phase"] == "Failed", status
    assert status["attempts"] == 2
    assert status["result"]["success"] is False
    assert "500" in status["result"]["error"]
    assert cond(run)["message"].startswith("BackoffLimitExceeded")
    conn = await cluster.get_connection("demo")
    assert conn["status"]["lastRunSuccess"] is False and conn["status"]["lastRunAttempts"] == 2


async def test_retry_succeeds_after_a_failed_attempt(
    cluster: Cluster, operator: OperatorProcess, http_source: HttpSource
) -> None:
    http_source.state.records = 200
    http_source.state.fail_from_page = 1
    await cluster.connection("demo", url=http_source.url, retries=2, timeoutSeconds=300)
    await cluster.run("demo-retry", "demo")

    async def first_attempt_failed() -> bool:
        job = await cluster.job("demo-retry")
        return int(((job or {}).get("status") or {}).get("failed") or 0) >= 1

    await wait_until(first_attempt_failed, 240, interval=1, what="the first attempt failing")
    http_source.state.fail_from_page = None  # the source recovers before the next attempt
    run = await cluster.wait_phase("demo-retry", "Succeeded", "Failed", seconds=240)
    status = run["status"]
    assert status["phase"] == "Succeeded", status
    assert status["attempts"] == 2
    assert status["result"]["success"] is True and not status["result"].get("error")
    assert status["result"]["rowsInserted"] == 200
    conn = await cluster.get_connection("demo")
    assert conn["status"]["lastRunSuccess"] is True and conn["status"]["lastRunAttempts"] == 2
    assert not conn["status"].get("lastRunError")


async def test_cancel_a_running_run(
    cluster: Cluster, operator: OperatorProcess, http_source: HttpSource
) -> None:
    http_source.state.delay_ms = 3000  # slow pages: the runner is mid-sync when cancelled
    await cluster.connection("demo", url=http_source.url, retries=0)
    await cluster.run("demo-slow", "demo")

    async def fetching() -> bool:
        return bool(http_source.item_requests())

    await wait_until(fetching, 180, what="the runner fetching pages")
    await cluster.cancel_run("demo-slow")
    run = await cluster.wait_phase("demo-slow", "Cancelled", seconds=60)
    assert run["status"]["result"]["success"] is False
    assert await cluster.job("demo-slow") is None

    async def pods_gone() -> bool:
        return not await cluster.kube.pods_of_run(cluster.ns, "demo-slow")

    await wait_until(pods_gone, 90, what="runner pods deleted")


async def test_batch_runs_connections_one_after_another(
    cluster: Cluster, operator: OperatorProcess, http_source: HttpSource
) -> None:
    http_source.state.records = 200
    await cluster.connection("first", url=http_source.url, retries=0, schemaName="first_data")
    await cluster.connection("second", url=http_source.url, retries=0, schemaName="second_data")
    await cluster.batch("nightly", ["second", "first"])

    async def finished() -> dict[str, Any] | None:
        batch = await cluster.get_batch("nightly")
        status = batch.get("status") or {}
        return status if status.get("state") == "finished" else None

    status = await wait_until(finished, 400, interval=2, what="batch finished")
    assert status["completed"] == ["second", "first"]
    assert [r["phase"] for r in status["runs"]] == ["Succeeded", "Succeeded"]
    runs = {r["connection"]: await cluster.get_run(r["runName"]) for r in status["runs"]}
    assert runs["second"]["status"]["completionTime"] <= runs["first"]["status"]["startTime"]
    assert status["startedAt"] <= status["finishedAt"]


async def test_operator_killed_mid_run_catches_up(
    cluster: Cluster, operator: OperatorProcess, http_source: HttpSource
) -> None:
    http_source.state.records = 300
    http_source.state.delay_ms = 1500
    await cluster.connection("demo", url=http_source.url, retries=0)
    await cluster.run("demo-k", "demo")
    await cluster.wait_phase("demo-k", "Running", seconds=60)

    async def fetching() -> bool:
        return bool(http_source.item_requests())

    await wait_until(fetching, 180, what="the runner fetching pages")
    operator.kill()

    async def job_done() -> bool:
        job = await cluster.job("demo-k")
        conds = (job or {}).get("status", {}).get("conditions") or []
        return any(c["type"] in ("Complete", "Failed") and c["status"] == "True" for c in conds)

    await wait_until(job_done, 240, interval=2, what="the Job finishing while the operator is down")
    assert await cluster.phase("demo-k") == "Running"
    operator.start()
    run = await cluster.wait_phase("demo-k", "Succeeded", "Failed", seconds=60)
    assert run["status"]["phase"] == "Succeeded", run["status"]
    assert run["status"]["result"]["rowsInserted"] == 300

    async def caught_up() -> bool:
        return "in sync: every object seen at start-up is reconciled" in operator.current_log()

    await wait_until(caught_up, 30, what="the restarted operator caught up")
    assert len(await cluster.jobs()) == 1  # caught up, and no second Job for the run


async def test_a_missing_secret_fails_the_run_naming_it(
    cluster: Cluster, operator: OperatorProcess, http_source: HttpSource
) -> None:
    """The pod's Secret volume cannot mount: the pod stays Pending with nothing in its status;
    the run fails at startTimeoutSeconds with the kubelet's event naming the Secret."""
    source = demo_source_spec(http_source.url)
    source["restApi"]["auth"] = {
        "type": "bearer",
        "tokenSecretRef": {"name": "no-such-secret", "key": "token"},
    }
    await cluster.connection("nosecret", source=source, retries=0, startTimeoutSeconds=10)
    await cluster.run("nosecret-1", "nosecret")
    run = await cluster.wait_phase("nosecret-1", "Succeeded", "Failed", seconds=120)
    status = run["status"]
    assert status["phase"] == "Failed" and status["reason"] == "SecretNotFound", status
    assert cond(run)["reason"] == "Failed"  # the condition's reason stays the phase
    message = cond(run)["message"]
    assert message.startswith("PodNotStarted: ") and 'secret "no-such-secret" not found' in message
