"""Leadership you can trust: a leader cut off from the apiserver stops acting before a standby
may take over, and never writes again once it has.

Replica A reaches the apiserver through a proxy the test can stall (tests/integration/operator/
stallproxy.py: connections stay open, no byte moves, nothing is dropped); replica B talks to
it directly. Every write of the operator names its replica as fieldManager, so the
managedFields of every object the watches saw (watchlog.py) tell who wrote what, and when.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from datapipelines.operator.kube import field_manager
from datapipelines.resources import RUN_PLURAL
from datapipelines.resources.times import parse_time
from tests.integration.operator.opcluster import Cluster
from tests.integration.operator.stallproxy import StallProxy
from tests.integration.operator.watchlog import WatchLog, Write
from tests.support.http_source import HttpSource
from tests.support.processes import NEVER_PULLED_REPO, OperatorProcess
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.pods, pytest.mark.asyncio(loop_scope="session")]

STUCK = {"image": f"{NEVER_PULLED_REPO}:none"}
LEASE = "datapipelines-operator"
LEASE_DURATION, RENEW_DEADLINE, RETRY_PERIOD = 6.0, 4.0, 1.0
TIMINGS = {
    "DATAPIPELINES_LEASE_DURATION_SECONDS": str(LEASE_DURATION),
    "DATAPIPELINES_RENEW_DEADLINE_SECONDS": str(RENEW_DEADLINE),
    "DATAPIPELINES_RETRY_PERIOD_SECONDS": str(RETRY_PERIOD),
}
A, B = "replica-a", "replica-b"
LOST = "leader election: lost Lease"
#: What the operator logs when it acts (starts or ends a run, deletes a Job or a batch).
ACTING = re.compile(r"run \S+/\S+ (started|ended)|Job deleted|batch \S+ deleted")
WATCHED = ("jobs", RUN_PLURAL, "pipelineconnections", "events", "leases")


def log_time(log: str, needle: str) -> datetime:
    """When the operator logged the first line containing ``needle`` (its text log lines
    start with the time in UTC: ``2026-01-01T10:00:00.123Z INFO …``)."""
    line = next(line for line in log.splitlines() if needle in line)
    return datetime.fromisoformat(line.split(" ", 1)[0].replace("Z", "+00:00"))


def owner_of_phase(run: dict[str, Any]) -> str | None:
    """The fieldManager that last wrote the run's status.phase."""
    for entry in run["metadata"].get("managedFields") or []:
        if "f:phase" in ((entry.get("fieldsV1") or {}).get("f:status") or {}):
            return str(entry["manager"])
    return None


def describe(writes: list[Write]) -> list[str]:
    return [f"{w.resource}/{w.name} {w.subresource or 'main'} at {w.time}" for w in writes]


async def test_stalled_leader_stops_and_the_standby_takes_over(
    cluster: Cluster,
    operator_factory: Callable[..., OperatorProcess],
    http_source: HttpSource,
    tmp_path: Path,
) -> None:
    http_source.state.records = 1000
    http_source.state.delay_ms = 3000  # slow pages: the real run outlives the takeover
    async with (
        StallProxy() as proxy,
        WatchLog(cluster.kube, cluster.ns, WATCHED) as watch,
    ):
        via_proxy = str(proxy.kubeconfig(tmp_path))
        a = operator_factory(
            POD_NAME=A, DATAPIPELINES_KUBECONFIG=via_proxy, KUBECONFIG=via_proxy, **TIMINGS
        ).start()
        await a.leading()
        b = operator_factory(POD_NAME=B, **TIMINGS).start()
        await wait_until(
            lambda: _has(b, "standing by"), 30, interval=0.2, what="replica-b standing by"
        )

        # A acts: a run that never starts (a Queue connection) and a real run, mid-sync.
        await cluster.connection("stuck", runner=STUCK, concurrencyPolicy="Queue")
        await cluster.connection("live", url=http_source.url, retries=0, schemaName="live_data")
        await cluster.run("stuck-1", "stuck")
        await cluster.run("live-1", "live")
        await _quiet(cluster, http_source)

        # The partition: A's connections stay open, nothing flows.
        proxy.stall()
        stalled_at = datetime.now().astimezone()
        await cluster.run("stuck-2", "stuck")  # requested while nobody may act yet

        await wait_until(
            lambda: _has(a, LOST), RENEW_DEADLINE + 3, interval=0.1, what="replica-a losing"
        )
        lost_at = log_time(a.current_log(), LOST)
        assert (lost_at - stalled_at).total_seconds() <= RENEW_DEADLINE + 1.5, a.log_tail()

        taken = await watch.wait_for(
            lambda v: v.resource == "leases" and v.obj["spec"].get("holderIdentity") == B,
            LEASE_DURATION + 15,
            "replica-b holding the Lease",
        )
        acquired = parse_time(taken.obj["spec"]["acquireTime"])
        assert acquired is not None
        # A stood down before B could take over, and B waited for the Lease to expire.
        assert lost_at < acquired, (lost_at, acquired)
        assert (acquired - stalled_at).total_seconds() >= LEASE_DURATION - 2 * RETRY_PERIOD
        assert int(taken.obj["spec"]["leaseTransitions"]) >= 1

        # A stops: its work is cancelled and the process exits to be restarted as a standby.
        await wait_until(lambda: _exited(a), 30, what="replica-a exiting")
        assert a.proc is not None and a.proc.returncode == 1, a.log_tail()
        after_loss = a.current_log().split(LOST, 1)[1]
        assert not ACTING.search(after_loss), after_loss

        # B takes over what A left: adopts both runs, queues the new one, follows cancels.
        await b.leading()
        queued = await cluster.wait_phase("stuck-2", "Queued", seconds=30)
        assert "waiting for run stuck-1" in _message(queued)
        await cluster.cancel_run("stuck-1")
        await cluster.wait_phase("stuck-1", "Cancelled", seconds=30)
        await cluster.wait_phase("stuck-2", "Running", seconds=30)
        http_source.state.delay_ms = 0  # the real run, started by A, finishes under B
        live = await cluster.wait_phase("live-1", "Succeeded", "Failed", seconds=120)
        assert live["status"]["phase"] == "Succeeded", live["status"]
        assert live["status"]["result"]["rowsInserted"] == 1000

        # The partition heals: what A sent meanwhile reaches the apiserver now. Restarted, A
        # stands by while B holds the Lease, and B goes on acting.
        proxy.resume()
        a.start()
        await wait_until(
            lambda: _has(a, "standing by"), 30, interval=0.2, what="replica-a standing by"
        )
        await cluster.run("stuck-3", "stuck")
        await cluster.wait_phase("stuck-3", "Queued", seconds=30)
        await cluster.cancel_run("stuck-2")
        await cluster.wait_phase("stuck-3", "Running", seconds=30)
        await cluster.cancel_run("stuck-3")
        await cluster.wait_phase("stuck-3", "Cancelled", seconds=30)
        assert "holds Lease" not in a.current_log(), a.current_log()
        assert a.alive()
        lease = await cluster.kube.lease(cluster.ns, LEASE)
        assert lease is not None and lease["spec"]["holderIdentity"] == B

        # (a) No run ever had two Jobs.
        uids = watch.job_uids()
        assert sorted(uids) == ["live-1", "stuck-1", "stuck-2", "stuck-3"], uids
        assert all(len(u) == 1 for u in uids.values()), uids

        # (b) Nothing was written by A once B held the Lease; A did write before, under its
        # own name, so the check can see it.
        by_a = watch.writes(field_manager(A))
        assert any(w.resource == "jobs" and w.name == "stuck-1" for w in by_a), describe(by_a)
        late = [w for w in by_a if w.time is None or w.time >= acquired]
        assert not late, describe(late)

        # The ends (and the queueing, and the Jobs made after the takeover) are B's writes.
        final = {name: await cluster.get_run(name) for name in uids}
        for name in ("stuck-1", "stuck-2", "stuck-3", "live-1"):
            assert owner_of_phase(final[name]) == field_manager(B), final[name]["metadata"]
        by_b = watch.writes(field_manager(B))
        assert {w.name for w in by_b if w.resource == "jobs"} == {"stuck-2", "stuck-3"}
        assert all(w.time is not None and w.time >= acquired.replace(microsecond=0) for w in by_b)


async def _quiet(cluster: Cluster, http_source: HttpSource) -> None:
    """Wait until A has written all it will about the two runs for now: both Running with
    their Started events, the stuck pod's waiting reason in its message, the runner syncing.

    The stall must not catch a write of A in flight: the proxy would hold it and deliver it
    on resume, after B took over (a client's deadline cannot recall bytes already sent)."""

    async def settled() -> bool:
        stuck, live = await cluster.get_run("stuck-1"), await cluster.get_run("live-1")
        if _phase(stuck) != "Running" or _phase(live) != "Running":
            return False
        if "ErrImageNeverPull" not in _message(stuck):
            return False
        reasons = {e["reason"] for e in await cluster.events("stuck-1")}
        reasons &= {e["reason"] for e in await cluster.events("live-1")}
        return "Started" in reasons and bool(http_source.item_requests())

    await wait_until(settled, 120, interval=0.5, what="both runs running, A quiet")


def _phase(run: dict[str, Any] | None) -> str | None:
    return ((run or {}).get("status") or {}).get("phase")


def _message(run: dict[str, Any]) -> str:
    conds = (run.get("status") or {}).get("conditions") or []
    return next((c["message"] for c in conds if c["type"] == "Succeeded"), "")


async def _has(op: OperatorProcess, text: str) -> bool:
    return text in op.current_log()


async def _exited(op: OperatorProcess) -> bool:
    return not op.alive()
