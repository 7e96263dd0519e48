"""Integrity on the real cluster: a refused Job, a pod that never starts, one writer per
destination, batches and retention, queue order, and an archive outage (issue 12).

Tests marked ``pods`` run the real runner image against the demo HTTP source; the others use
images that never run (tests/support/processes.py), so a started run stays Running.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from datapipelines.resources import CONNECTION_PLURAL, RUN_PLURAL, history
from datapipelines.resources.times import parse_time
from tests.integration.operator.opcluster import Cluster
from tests.integration.operator.watchlog import Version, WatchLog
from tests.support.http_source import HttpSource
from tests.support.postgres import PostgresServer
from tests.support.processes import NEVER_PULLED_REPO, OperatorProcess, _async
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.asyncio(loop_scope="session")]

STUCK = {"image": f"{NEVER_PULLED_REPO}:none"}
FINISHED = ("Succeeded", "Failed", "Cancelled")


def cond(obj: dict[str, Any], type_: str = "Succeeded") -> dict[str, Any]:
    return next(c for c in obj["status"]["conditions"] if c["type"] == type_)


def when(value: str) -> datetime:
    parsed = parse_time(value)
    assert parsed is not None
    return parsed


# --------------------------------------------------------------------------- a refused Job


async def test_a_job_the_apiserver_refuses_fails_the_run_at_once(
    cluster: Cluster, operator: OperatorProcess
) -> None:
    # The CRD's CEL compares requests with limits for cpu, memory and ephemeral-storage only;
    # the apiserver's Pod validation wants requests == limits for an extended resource.
    unequal = {"requests": {"example.com/foo": 1}, "limits": {"example.com/foo": 2}}
    await cluster.connection("demo", runner={**STUCK, "resources": unequal})
    await cluster.run("demo-1", "demo")
    run = await cluster.wait_phase("demo-1", *FINISHED, seconds=30)
    status = run["status"]
    assert status["phase"] == "Failed", status
    message = cond(run)["message"]
    assert message.startswith("JobRejected: the Kubernetes API refused the run's Job: "), message
    assert "example.com/foo" in message and "must be equal to" in message, message
    assert status["result"]["success"] is False and status["result"]["error"] == message
    assert status["attempts"] == 0 and status["completionTime"] and not status.get("jobName")
    assert await cluster.job("demo-1") is None

    conn = await cluster.get_connection("demo")
    ready = cond(conn, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "JobRejected")
    assert ready["message"] == message
    assert ready["observedGeneration"] == conn["metadata"]["generation"]
    assert {(e["type"], e["reason"]) for e in await cluster.events("demo")} >= {
        ("Warning", "JobRejected")
    }

    # The same spec would be refused again: the next run fails before any try.
    await cluster.run("demo-2", "demo")
    again = await cluster.wait_phase("demo-2", *FINISHED, seconds=30)
    assert again["status"]["phase"] == "Failed"
    assert cond(again)["message"].startswith("ConnectionInvalid: JobRejected: "), again["status"]

    # A fixed spec is a new generation: Ready again, and the next run gets its Job.
    await cluster.kube.patch(
        cluster.ns, CONNECTION_PLURAL, "demo", {"spec": {"runner": {"resources": None}}}
    )

    async def ready_again() -> dict[str, Any] | None:
        conn = await cluster.get_connection("demo")
        ready = cond(conn, "Ready") if (conn.get("status") or {}).get("conditions") else None
        return conn if ready and ready["status"] == "True" else None

    await wait_until(ready_again, 30, what="the connection Ready again")
    await cluster.run("demo-3", "demo")
    started = await cluster.wait_phase("demo-3", "Running", seconds=30)
    assert started["status"]["jobName"] == "demo-3" and await cluster.job("demo-3") is not None


# ---------------------------------------------------------------- a pod that never starts

UNPULLABLE_REPO = "localhost/does-not-exist"


async def test_a_pod_that_cannot_start_fails_after_the_start_timeout(
    cluster: Cluster, operator_factory: Callable[..., OperatorProcess]
) -> None:
    operator_factory(
        # the kubelet really tries to pull (from a registry on localhost that is not there)
        DATAPIPELINES_RUNNER_IMAGE_PULL_POLICY="IfNotPresent",
        DATAPIPELINES_SANDBOX_IMAGES=UNPULLABLE_REPO,
    ).start()
    await cluster.connection(
        "demo", runner={"image": f"{UNPULLABLE_REPO}:never"}, startTimeoutSeconds=10, retries=2
    )
    await cluster.run("demo-1", "demo")
    await cluster.wait_phase("demo-1", "Running", seconds=30)
    (pod,) = await wait_until(
        lambda: cluster.kube.pods_of_run(cluster.ns, "demo-1"), 30, what="the run's pod"
    )
    run = await cluster.wait_phase("demo-1", *FINISHED, seconds=45)
    status = run["status"]
    assert status["phase"] == "Failed", status
    message = cond(run)["message"]
    assert message.startswith(
        "PodNotStarted: the runner's pod did not start within 10 s (startTimeoutSeconds): "
    ), message
    assert re.search(r"\b(ErrImagePull|ImagePullBackOff)\b", message), message
    assert status["result"]["error"] == message and status["result"]["success"] is False
    assert status["attempts"] == 1  # no retry of a pod that cannot start
    pod_created = when(pod["metadata"]["creationTimestamp"])
    waited = (when(status["completionTime"]) - pod_created).total_seconds()
    assert 10 <= waited <= 20, waited

    async def job_gone() -> bool:
        return await cluster.job("demo-1") is None

    await wait_until(job_gone, 30, what="the Job of the failed run deleted")
    conn = await cluster.get_connection("demo")
    assert conn["status"]["lastRunSuccess"] is False
    assert conn["status"]["lastRunError"] == message


# --------------------------------------------------------------------------- one writer per file

SHARED_FILE = "/shared/shared.duckdb"
EVENTS_ONLY = {
    "DATAPIPELINES_SANDBOX_VOLUME_TYPES": "persistentVolumeClaim,emptyDir,configMap,hostPath",
    # no safety resync within the test: the waiting run must be woken by what happens
    "DATAPIPELINES_SYNC_INTERVAL_SECONDS": "600",
}


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A host directory both connections mount (hostPath: the node is this machine)."""
    with tempfile.TemporaryDirectory(prefix="dp-shared-") as path:
        os.chmod(path, 0o777)  # the runner is uid 10001; hostPath gets no fsGroup
        yield Path(path)


def shared_destination(directory: Path) -> dict[str, Any]:
    return {
        "type": "duckdb",
        "duckdb": {
            "path": SHARED_FILE,
            "volume": {"hostPath": {"path": str(directory), "type": "Directory"}},
        },
    }


def stopped_at(watch: WatchLog, run: str) -> int:
    """The resourceVersion (etcd revision) at which the last pod of ``run`` stopped: its
    container terminated, or the pod was deleted."""
    stops = [
        int(v.obj["metadata"]["resourceVersion"])
        for v in watch.of("pods")
        if v.obj["metadata"].get("labels", {}).get("datapipelines.io/run") == run
        and (v.type == "DELETED" or _terminated(v))
    ]
    assert stops, f"no pod of {run} seen stopping"
    return min(stops)


def _terminated(v: Version) -> bool:
    statuses = (v.obj.get("status") or {}).get("containerStatuses") or []
    return any("terminated" in (s.get("state") or {}) for s in statuses) or (
        (v.obj.get("status") or {}).get("phase") in ("Succeeded", "Failed")
    )


def created_at(watch: WatchLog, resource: str, name: str) -> int:
    return min(
        int(v.obj["metadata"]["resourceVersion"])
        for v in watch.of(resource)
        if v.name == name and v.type == "ADDED"
    )


def rows(directory: Path, schema: str) -> int:
    import duckdb

    con = duckdb.connect(str(directory / Path(SHARED_FILE).name), read_only=True)
    try:
        return int(con.execute(f"SELECT count(*) FROM {schema}.items").fetchone()[0])  # type: ignore[index]
    finally:
        con.close()


async def two_writers_of_one_file(
    cluster: Cluster, http_source: HttpSource, shared_dir: Path, *, delay_ms: int
) -> None:
    """Connections `one` and `two` loading 300 records each into the same DuckDB file."""
    http_source.state.records = 300
    http_source.state.delay_ms = delay_ms
    dest = shared_destination(shared_dir)
    for name in ("one", "two"):
        await cluster.connection(
            name, url=http_source.url, retries=0, schemaName=f"{name}_data", destination=dest
        )


@pytest.mark.pods
async def test_connections_sharing_a_duckdb_file_take_turns_and_both_succeed(
    cluster: Cluster,
    operator_factory: Callable[..., OperatorProcess],
    http_source: HttpSource,
    shared_dir: Path,
) -> None:
    operator_factory(**EVENTS_ONLY).start()
    await two_writers_of_one_file(cluster, http_source, shared_dir, delay_ms=300)
    async with WatchLog(cluster.kube, cluster.ns, ("pods", "jobs", RUN_PLURAL)) as watch:
        await cluster.run("one-1", "one")
        await cluster.run("two-1", "two")
        await cluster.wait_phase("one-1", "Running", seconds=30)
        queued = await cluster.wait_phase("two-1", "Queued", seconds=30)
        message = cond(queued)["message"]
        assert "one-1 of connection one" in message, message
        assert f"DuckDB file {SHARED_FILE}" in message, message

        runs = {}
        for name in ("one-1", "two-1"):
            runs[name] = await cluster.wait_phase(name, *FINISHED, seconds=120)
            assert runs[name]["status"]["phase"] == "Succeeded", runs[name]["status"]
        # Never at once: the second Job came only after the first runner had stopped.
        assert created_at(watch, "jobs", "two-1") > stopped_at(watch, "one-1")
        first, second = runs["one-1"]["status"], runs["two-1"]["status"]
        assert when(first["completionTime"]) <= when(second["startTime"])
    assert rows(shared_dir, "one_data") == 300 and rows(shared_dir, "two_data") == 300


@pytest.mark.pods
async def test_the_next_writer_waits_for_a_cancelled_runner_to_stop(
    cluster: Cluster,
    operator_factory: Callable[..., OperatorProcess],
    http_source: HttpSource,
    shared_dir: Path,
) -> None:
    operator_factory(**EVENTS_ONLY).start()
    # the first runner is mid-sync when it is cancelled
    await two_writers_of_one_file(cluster, http_source, shared_dir, delay_ms=2000)
    async with WatchLog(cluster.kube, cluster.ns, ("pods", "jobs", RUN_PLURAL)) as watch:
        await cluster.run("one-1", "one")
        await cluster.wait_phase("one-1", "Running", seconds=30)
        await cluster.run("two-1", "two")
        await cluster.wait_phase("two-1", "Queued", seconds=30)
        await wait_until(
            lambda: _async(bool(http_source.item_requests())), 180, what="runner one-1 syncing"
        )
        await cluster.cancel_run("one-1")
        await cluster.wait_phase("one-1", "Cancelled", seconds=60)
        http_source.state.delay_ms = 0
        second = await cluster.wait_phase("two-1", *FINISHED, seconds=120)
        assert second["status"]["phase"] == "Succeeded", second["status"]
        assert created_at(watch, "jobs", "two-1") > stopped_at(watch, "one-1")
    assert rows(shared_dir, "two_data") == 300


# --------------------------------------------------------------------------- batch and retention


@pytest.mark.pods
async def test_a_batch_reports_runs_that_retention_deletes(
    cluster: Cluster, operator: OperatorProcess, http_source: HttpSource
) -> None:
    http_source.state.records = 200
    for name in ("a", "b"):
        await cluster.connection(
            name, url=http_source.url, retries=0, historyLimit=0, schemaName=f"{name}_data"
        )
    await cluster.batch("nightly", ["a", "b"])

    async def finished() -> dict[str, Any] | None:
        batch = await cluster.get_batch("nightly")
        status = batch.get("status") or {}
        return status if status.get("state") in ("finished", "cancelled") else None

    status = await wait_until(finished, 300, interval=1, what="batch finished")
    assert status["state"] == "finished", status
    assert status["completed"] == ["a", "b"]
    assert [(r["connection"], r["phase"]) for r in status["runs"]] == [
        ("a", "Succeeded"),
        ("b", "Succeeded"),
    ], status
    assert cond(await cluster.get_batch("nightly"), "Complete")["status"] == "True"

    async def pruned() -> bool:
        return not await cluster.runs()

    await wait_until(pruned, 30, what="historyLimit 0 deleting both runs once recorded")
    batch = await cluster.get_batch("nightly")
    assert [r["phase"] for r in batch["status"]["runs"]] == ["Succeeded", "Succeeded"]
    for name in ("a", "b"):
        conn = (await cluster.get_connection(name))["status"]
        assert conn["lastRunSuccess"] is True, conn
        assert conn["lastRunName"] == next(
            r["runName"] for r in status["runs"] if r["connection"] == name
        )


# --------------------------------------------------------------------------- queue order


async def test_runs_queued_in_the_same_second_start_in_request_order(
    cluster: Cluster, operator_factory: Callable[..., OperatorProcess]
) -> None:
    await cluster.connection("demo", runner=STUCK, concurrencyPolicy="Queue")
    # Requested while no operator runs, names in no useful order: only the request order
    # (creation time, then the etcd revision) can tell them apart.
    order = ["q-e", "q-b", "q-d", "q-a", "q-c"]
    created = [await cluster.run(name, "demo") for name in order]
    seconds = [c["metadata"]["creationTimestamp"] for c in created]
    assert len(set(seconds)) < len(seconds), seconds  # some share a second
    op = operator_factory().start()

    first = await cluster.wait_phase("q-e", "Running", seconds=60)
    await op.in_sync()
    runs = {r["metadata"]["name"]: r for r in await cluster.runs()}
    sequence = [runs[name]["status"]["sequence"] for name in order]
    assert sequence == sorted(sequence) and len(set(sequence)) == len(sequence), sequence
    assert [runs[n]["status"]["phase"] for n in order] == ["Running"] + ["Queued"] * 4
    assert await cluster.active_runs("demo") == order
    assert first["status"]["sequence"] == sequence[0]

    for index, name in enumerate(order[:-1]):
        if index == 2:  # a restart in the middle changes nothing
            op.kill()
            op.start()
            await op.in_sync()
        await cluster.cancel_run(name)
        await cluster.wait_phase(name, "Cancelled", seconds=30)
        nxt = order[index + 1]
        await cluster.wait_phase(nxt, "Running", seconds=30)
        rest = [await cluster.phase(n) for n in order[index + 2 :]]
        assert rest == ["Queued"] * len(rest), (nxt, rest)
        assert [await cluster.job(n) for n in order[index + 2 :]] == [None] * len(rest)
    started = {r["metadata"]["name"]: r["status"]["startTime"] for r in await cluster.runs()}
    assert [when(started[n]) for n in order] == sorted(when(started[n]) for n in order)


# --------------------------------------------------------------------------- archive outage


@pytest.fixture
def archive_server() -> Iterator[PostgresServer]:
    """A PostgreSQL of this test only: initialised with its port, not started yet."""
    server = PostgresServer().init()
    try:
        yield server
    finally:
        server.destroy()


async def _gone(cluster: Cluster, run: str) -> bool:
    return await cluster.get_run(run) is None


@pytest.mark.postgres
async def test_runs_are_kept_while_the_archive_is_down_then_archived_and_pruned(
    cluster: Cluster,
    operator_factory: Callable[..., OperatorProcess],
    archive_server: PostgresServer,
) -> None:
    op = operator_factory(DATAPIPELINES_HISTORY_DSN=archive_server.dsn()).start()
    await cluster.connection("demo", runner=STUCK, historyLimit=0)
    await cluster.run("demo-a", "demo")
    await cluster.wait_phase("demo-a", "Running")
    await cluster.run("demo-b", "demo")  # Forbid: fails at once, then is beyond historyLimit 0
    await cluster.wait_phase("demo-b", "Failed")
    await cluster.delete_job("demo-a")  # demo-a fails (JobDeleted): beyond the limit too

    async def kept(run: str) -> bool:
        return f"run {cluster.ns}/{run} kept (beyond historyLimit 0)" in op.current_log()

    for name in ("demo-b", "demo-a"):
        await wait_until(lambda n=name: kept(n), 60, what=f"retention holding {name} back")
    runs = {r["metadata"]["name"]: r["status"]["phase"] for r in await cluster.runs()}
    assert runs == {"demo-a": "Failed", "demo-b": "Failed"}, runs

    async def tried_again() -> bool:  # a later retention pass, the archive still down
        return "(next try in 4 s)" in op.current_log()

    await wait_until(tried_again, 60, what="the archive tried again after the back-off")
    assert sorted(r["metadata"]["name"] for r in await cluster.runs()) == ["demo-a", "demo-b"]

    archive_server.start()
    archive_server.wait_ready()
    for name in ("demo-a", "demo-b"):
        await wait_until(lambda n=name: _gone(cluster, n), 60, what=f"{name} archived and pruned")
    archived = archive_server.query(
        f"SELECT run_name, namespace, connection, phase, success, error FROM {history.TABLE} "
        "ORDER BY run_name"
    )
    assert [r[:5] for r in archived] == [
        ("demo-a", cluster.ns, "demo", "Failed", False),
        ("demo-b", cluster.ns, "demo", "Failed", False),
    ], archived
    assert archived[0][5].startswith("JobDeleted") and archived[1][5].startswith(
        "ConcurrencyForbidden"
    )
