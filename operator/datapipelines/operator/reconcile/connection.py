"""Reconcile one connection key: the connection's Ready condition and last run, and every run
of it — start, queue, follow, end, cancel, prune — from what the store holds. Pure.

``gather`` reads the store (memory only); ``decide`` turns that into actions. Request order,
the destination mutex and retention are level-based: the same state gives the same decision.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from datapipelines.resources import LABEL_CONNECTION, LABEL_TRIGGER, schedule
from datapipelines.resources.batch import PipelineBatch
from datapipelines.resources.connection import CONDITION_READY, ConcurrencyPolicy
from datapipelines.resources.manifests import run_manifest, scheduled_run_name
from datapipelines.resources.meta import (
    ConditionStatus,
    conditions_json,
    find_condition,
    with_condition,
)
from datapipelines.resources.run import (
    PipelineRun,
    ResultSource,
    RunPhase,
    RunResult,
    Trigger,
)
from datapipelines.resources.times import format_time

from .. import validation
from ..batchstate import recorded_terminal
from ..concurrency import RunRef, plan
from ..config import Settings
from ..jobs import oauth2_identity, render_job
from ..retention import FinishedRef, to_delete
from ..status import (
    REASON_CANCELLED,
    REASON_CONNECTION_INVALID,
    REASON_CONNECTION_NOT_FOUND,
    REASON_INVALID_REPORT,
    REASON_JOB_REJECTED,
    Observed,
    derive,
)
from ..store import Store
from ..views import ConnectionView, JobView, PodView, batch_label
from .actions import (
    CreateRun,
    Decision,
    DeleteJob,
    DeleteRun,
    Event,
    EventRef,
    LabelRun,
    PatchConnectionStatus,
    PatchRunStatus,
    ReadPodWarning,
    StartRun,
    connection_ref,
    run_ref,
)
from .runstatus import run_patch

#: How often a run waiting for a foreign Job of its name to go looks again.
FOREIGN_JOB_RETRY_SECONDS = 10


@dataclass(frozen=True)
class Peer:
    """A run of another connection that writes the same destination."""

    namespace: str
    connection: str
    run: PipelineRun


@dataclass(frozen=True)
class PeerPod:
    """A runner pod, not stopped yet, of a run of another connection that writes the same
    destination (its run may have ended already: a cancelled runner still shutting down)."""

    namespace: str
    connection: str
    run: str
    pod: str


@dataclass
class ConnectionState:
    namespace: str
    name: str
    connection: ConnectionView | None
    runs: list[PipelineRun]
    jobs: dict[str, JobView | None] = field(default_factory=dict)
    foreign_jobs: set[str] = field(default_factory=set)
    pods: dict[str, list[PodView]] = field(default_factory=dict)
    batches: dict[str, PipelineBatch | None] = field(default_factory=dict)
    peers: list[Peer] = field(default_factory=list)
    peer_pods: list[PeerPod] = field(default_factory=list)
    pod_warnings: dict[str, str] = field(default_factory=dict)
    """Newest Warning event of the runs' pods that were asked about (by pod uid)."""


def runner_alive(pod: PodView) -> bool:
    """The pod's runner may still write: the pod is pending or running and its container has
    not terminated."""
    return pod.phase in ("Pending", "Running") and not pod.container.terminated


def job_uids(store: Store, namespace: str, run: PipelineRun) -> set[str]:
    """UIDs of the run's own Job: the one in the index, and the one its status recorded (the
    Job may be gone while its pods are still terminating)."""
    uids = {j.uid for j in store.jobs_of(namespace, run.name) if j.owned_by(run.metadata.uid)}
    if run.status.job_uid:
        uids.add(run.status.job_uid)
    return uids


def run_pods(store: Store, namespace: str, run: PipelineRun) -> list[PodView]:
    """The run's pods: labelled with it *and* owned by its Job (a label alone can be forged
    by anyone who may create pods)."""
    uids = job_uids(store, namespace, run)
    return [p for p in store.pods_of(namespace, run.name) if p.owned_by(uids)]


def _unreadable(run: PipelineRun, job: JobView | None, error: Exception, now: datetime) -> Observed:
    """A run whose Job, pods or report could not be read: it fails with the reason (the rest
    of the connection goes on), and its Job goes."""
    message = (
        f"{REASON_INVALID_REPORT}: the run's pods or report could not be read "
        f"({type(error).__name__}: {str(error)[:300]})"
    )
    start = run.status.start_time or (job.created if job else None)
    return Observed(
        phase=RunPhase.FAILED,
        message=message,
        attempts=run.status.attempts or 0,
        start_time=start,
        completion_time=now,
        result=RunResult(success=False, error=message, source=ResultSource.OPERATOR),
        delete_job=job is not None and not job.deleting,
    )


def gather(store: Store, namespace: str, name: str) -> ConnectionState:
    conn = store.connection(namespace, name)
    runs = store.runs_of(namespace, name)
    state = ConnectionState(namespace=namespace, name=name, connection=conn, runs=runs)
    for run in runs:
        own = [j for j in store.jobs_of(namespace, run.name) if j.owned_by(run.metadata.uid)]
        state.jobs[run.name] = own[0] if own else None
        if not own and store.jobs_of(namespace, run.name):
            state.foreign_jobs.add(run.name)
        state.pods[run.name] = run_pods(store, namespace, run)
        for pod in state.pods[run.name]:
            warning = store.pod_warning(pod.uid)
            if warning is not None:
                state.pod_warnings[pod.uid] = warning
        batch = batch_label(run.metadata)
        if batch and batch not in state.batches:
            state.batches[batch] = store.batch(namespace, batch)
    dest = conn.destination if conn is not None else None
    if dest is not None:
        for other in store.connections_sharing(dest.key):
            if other.name == name and other.namespace == namespace:
                continue
            for run in store.runs_of(other.namespace, other.name):
                if not run.terminal:
                    state.peers.append(Peer(other.namespace, other.name, run))
                for pod in run_pods(store, other.namespace, run):
                    if runner_alive(pod):
                        state.peer_pods.append(
                            PeerPod(other.namespace, other.name, run.name, pod.name)
                        )
    return state


# --------------------------------------------------------------------------- helpers


def _cancel_requested(run: PipelineRun, state: ConnectionState) -> bool:
    if run.spec.cancel_requested:
        return True
    batch_name = batch_label(run.metadata)
    batch = state.batches.get(batch_name) if batch_name else None
    return bool(batch is not None and batch.spec.cancel_requested)


def _failed_result(message: str) -> RunResult:
    return RunResult(success=False, error=message, duration_ms=0, source=ResultSource.OPERATOR)


class _Builder:
    """Accumulates the decision of one reconcile."""

    def __init__(self, state: ConnectionState, settings: Settings, now: datetime) -> None:
        self.state = state
        self.settings = settings
        self.now = now
        self.decision = Decision()
        self.ended: dict[str, tuple[PipelineRun, RunPhase, Observed | None]] = {}
        self.conn_patch: dict[str, object] = {}
        self.conn_events: tuple[Event, ...] = ()
        self.last_phase: RunPhase | None = None

    def event(self, about: EventRef, type_: str, reason: str, message: str) -> tuple[Event, ...]:
        if type_ == "Normal" and self.settings.events == "warnings":
            return ()
        return (Event(about, type_, reason, message[:1024]),)

    def end_without_job(self, run: PipelineRun, phase: RunPhase, message: str) -> None:
        patch = run_patch(
            run,
            phase,
            message,
            self.now,
            completion_time=self.now,
            attempts=run.status.attempts or 0,
            result=_failed_result(message),
        )
        kind = "Warning" if phase is RunPhase.FAILED else "Normal"
        events = self.event(run_ref(run), kind, phase.value, message)
        if patch is not None:
            self.decision.actions.append(
                PatchRunStatus(run, patch, phase, precondition=True, events=events)
            )
        self.ended[run.name] = (run, phase, None)

    def end(self, run: PipelineRun, obs: Observed, job: JobView | None) -> None:
        assert obs.result is not None
        patch = run_patch(
            run,
            obs.phase,
            obs.message,
            self.now,
            start_time=obs.start_time,
            completion_time=obs.completion_time or self.now,
            attempts=obs.attempts,
            result=obs.result,
        )
        if obs.phase is RunPhase.SUCCEEDED:
            text = f"run succeeded after {obs.attempts} attempt(s); rows inserted: " + str(
                obs.result.rows_inserted
            )
            events = self.event(run_ref(run), "Normal", "Succeeded", text)
        elif obs.phase is RunPhase.CANCELLED:
            events = self.event(
                run_ref(run), "Normal", "Cancelled", f"run cancelled: {obs.message}"
            )
        else:
            events = self.event(run_ref(run), "Warning", "Failed", f"run failed: {obs.message}")
        delete = job if obs.delete_job and job is not None and not job.deleting else None
        if patch is not None:
            self.decision.actions.append(
                PatchRunStatus(
                    run, patch, obs.phase, precondition=True, events=events, delete_job=delete
                )
            )
        self.ended[run.name] = (run, obs.phase, obs)


# --------------------------------------------------------------------------- decide


def decide(state: ConnectionState, settings: Settings, now: datetime) -> Decision:
    b = _Builder(state, settings, now)
    conn = state.connection
    problems = validation.problems(conn, settings) if conn is not None else []
    ready_cond = find_condition(conn.status.conditions, CONDITION_READY) if conn else None
    if (
        conn is not None
        and not problems
        and ready_cond is not None
        and ready_cond.status is ConditionStatus.FALSE
        and ready_cond.reason == REASON_JOB_REJECTED
        and ready_cond.observed_generation == conn.meta.generation
    ):
        # the apiserver refused this spec's Job; it would again until the spec changes
        problems = [validation.Problem(REASON_JOB_REJECTED, ready_cond.message)]

    ordered = sorted(state.runs, key=lambda r: r.order())
    active = [r for r in ordered if not r.terminal]
    # A run with its own Job was started, even if writing Running failed: follow (adopt) it.
    started = [r for r in active if r.phase is RunPhase.RUNNING or state.jobs.get(r.name)]
    replacing = (
        conn is not None
        and conn.spec is not None
        and conn.spec.concurrency_policy is ConcurrencyPolicy.REPLACE
        and any(r not in started and not _cancel_requested(r, state) for r in active)
    )
    _follow_started(b, started, quiet=replacing)
    pending = [r for r in active if r not in started]
    if conn is None:
        _orphans(b, pending)
    elif problems:
        first = problems[0]
        for run in pending:
            if _cancel_requested(run, state):
                b.end_without_job(
                    run, RunPhase.CANCELLED, f"{REASON_CANCELLED}: cancelled before it started"
                )
            else:
                b.end_without_job(
                    run,
                    RunPhase.FAILED,
                    f"{REASON_CONNECTION_INVALID}: {first.reason}: {first.message}",
                )
    else:
        _admit(b, conn, [r for r in active if r.name not in b.ended])
    if conn is not None:
        _connection_status(b, conn, problems)
        if not problems:
            _schedule(b, conn)
        if b.conn_patch:
            # first: whoever sees a run finished also sees it as the connection's last run
            b.decision.actions.insert(0, PatchConnectionStatus(conn, b.conn_patch, b.conn_events))
    _retention(b, conn)
    _labels(b, [r for r in active if r.name not in b.ended])
    _wake_waiting_peers(b)
    return b.decision


def _wake_waiting_peers(b: _Builder) -> None:
    """A run of this connection ends now: the other connections writing the same destination
    with runs waiting may go on (their next reconcile reads this end from the store)."""
    if not any(phase.terminal for _, phase, _ in b.ended.values()):
        return
    for peer in b.state.peers:
        if peer.run.phase is not RunPhase.RUNNING:
            b.decision.wake.add(("conn", peer.namespace, peer.connection))


def _labels(b: _Builder, runs: list[PipelineRun]) -> None:
    """Label runs made by hand (kubectl) that stay active, so label selectors find them."""
    for run in runs:
        wanted = {LABEL_CONNECTION: run.spec.connection_name, LABEL_TRIGGER: run.spec.trigger.value}
        missing = {k: v for k, v in wanted.items() if run.metadata.labels.get(k) != v}
        if missing:
            b.decision.actions.insert(0, LabelRun(run, missing))


def _follow_started(b: _Builder, running: list[PipelineRun], *, quiet: bool = False) -> None:
    """Runs with a Job: their status from the Job and pods; the end when it came. ``quiet``:
    they are being replaced, so only an end is written."""
    state = b.state
    for run in running:
        job = state.jobs.get(run.name)
        spec = state.connection.spec if state.connection else None
        try:
            obs = derive(
                run=run,
                job=job,
                pods=state.pods.get(run.name, []),
                cancel_requested=_cancel_requested(run, state),
                start_timeout_seconds=spec.start_timeout_seconds if spec else 300,
                now=b.now,
                pod_warnings=state.pod_warnings,
            )
        except Exception as error:  # one run's bad input never jams the key
            obs = _unreadable(run, job, error, b.now)
        if obs.terminal:
            b.end(run, obs, job)
            continue
        fields: dict[str, object] = {
            "attempts": obs.attempts,
            "start_time": obs.start_time,
            "job_name": run.status.job_name or run.name,
        }
        if job is not None:
            fields["job_uid"] = job.uid
        patch = None if quiet else run_patch(run, RunPhase.RUNNING, obs.message, b.now, **fields)
        if patch is not None:
            b.decision.actions.append(PatchRunStatus(run, patch, RunPhase.RUNNING))
        if obs.delete_job and job is not None and not job.deleting:
            b.decision.actions.append(DeleteJob(run, job, obs.message))
        if obs.read_warning_of is not None:
            b.decision.actions.append(ReadPodWarning(run, obs.read_warning_of))
        if obs.recheck_at is not None:
            b.decision.after((obs.recheck_at - b.now).total_seconds())


def _orphans(b: _Builder, pending: list[PipelineRun]) -> None:
    """Runs of a connection that does not exist (yet): wait a little, then fail them."""
    for run in pending:
        created = run.metadata.creation_timestamp or b.now
        age = (b.now - created).total_seconds()
        if _cancel_requested(run, b.state):
            b.end_without_job(
                run, RunPhase.CANCELLED, f"{REASON_CANCELLED}: cancelled before it started"
            )
        elif age < b.settings.connection_grace_seconds:
            b.decision.after(b.settings.connection_grace_seconds - age)
        else:
            b.end_without_job(
                run,
                RunPhase.FAILED,
                f"{REASON_CONNECTION_NOT_FOUND}: PipelineConnection {b.state.name!r} does not "
                f"exist in namespace {b.state.namespace}",
            )


def _admit(b: _Builder, conn: ConnectionView, active: list[PipelineRun]) -> None:
    """The concurrency policy and the destination mutex over the connection's active runs."""
    state = b.state
    assert conn.spec is not None
    by_name = {r.name: r for r in active}
    refs = [
        RunRef(
            name=r.name,
            order=_order(r),
            phase=RunPhase.RUNNING if state.jobs.get(r.name) else r.phase,
            cancel_requested=_cancel_requested(r, state),
        )
        for r in active
    ]
    decision = plan(conn.spec.concurrency_policy, refs)
    for name, msg in decision.cancel:
        b.end_without_job(by_name[name], RunPhase.CANCELLED, msg)
    for name, msg in decision.fail:
        b.end_without_job(by_name[name], RunPhase.FAILED, msg)
    for name, msg in decision.stop:  # Replace: the running one ends now, its Job goes
        run = by_name[name]
        job = state.jobs.get(name)
        obs = Observed(
            phase=RunPhase.CANCELLED,
            message=msg,
            attempts=run.status.attempts or 0,
            start_time=run.status.start_time,
            completion_time=b.now,
            result=RunResult(success=False, error=msg, source=ResultSource.OPERATOR),
            delete_job=True,
        )
        b.end(run, obs, job)
    for name in decision.start:
        run = by_name[name]
        blocker = _live_pod_of_another_run(b, run) or _destination_holder(b, conn, run)

        if blocker is not None:
            _queue(b, run, blocker)
        elif name in state.foreign_jobs:
            _queue(b, run, "waiting for a Job of the same name (an earlier run's) to be removed")
            b.decision.after(FOREIGN_JOB_RETRY_SECONDS)
        else:
            _start(b, conn, run)
    for name, why in decision.queue:
        _queue(b, by_name[name], why)
    if conn.spec.concurrency_policy is ConcurrencyPolicy.REPLACE and decision.stop:
        b.decision.after(1)


def _order(run: PipelineRun) -> tuple[datetime, int, str]:
    return run.order()


def _live_pod_of_another_run(b: _Builder, run: PipelineRun) -> str | None:
    """A pod of an ended (cancelled, replaced) run of this connection that still runs: the new
    run waits until it has stopped, so two runners never write one destination at once."""
    for other, pods in b.state.pods.items():
        if other == run.name:
            continue
        for pod in pods:
            if runner_alive(pod):
                b.decision.after(2)
                return f"waiting for the pod {pod.name} of the earlier run {other} to stop"
    return None


def _destination_holder(b: _Builder, conn: ConnectionView, run: PipelineRun) -> str | None:
    """Why ``run`` must wait for another connection's run on the same destination, or None.

    The holder is a running run, or a runner pod of theirs that has not stopped yet (its run
    may have ended: a cancel deletes the Job before the pod is gone); among waiting runs the
    earliest goes first (FIFO across the connections sharing the destination)."""
    dest = conn.destination
    if dest is None or not (b.state.peers or b.state.peer_pods):
        return None
    for peer in b.state.peers:
        if peer.run.phase is RunPhase.RUNNING:
            b.decision.wake.add(("conn", peer.namespace, peer.connection))
            return (
                f"waiting for run {peer.run.name} of connection {peer.connection}, which is "
                f"writing the same {dest.label} (one writer at a time)"
            )
    for pod in b.state.peer_pods:  # e.g. a cancelled run's runner that has not stopped yet
        b.decision.after(2)
        return (
            f"waiting for the pod {pod.pod} of run {pod.run} of connection {pod.connection} "
            f"to stop (same {dest.label}; one writer at a time)"
        )
    mine = _order(run)
    earlier = [p for p in b.state.peers if _order(p.run) < mine]
    if earlier:
        first = min(earlier, key=lambda p: _order(p.run))
        b.decision.wake.add(("conn", first.namespace, first.connection))
        return (
            f"waiting for the earlier run {first.run.name} of connection {first.connection} "
            f"(same {dest.label}; one writer at a time)"
        )
    return None


def _queue(b: _Builder, run: PipelineRun, why: str) -> None:
    patch = run_patch(run, RunPhase.QUEUED, why, b.now)
    if patch is None:
        return
    events = () if run.phase is RunPhase.QUEUED else b.event(run_ref(run), "Normal", "Queued", why)
    b.decision.actions.append(PatchRunStatus(run, patch, RunPhase.QUEUED, events=events))


def _start(b: _Builder, conn: ConnectionView, run: PipelineRun) -> None:
    assert conn.spec is not None
    manifest = render_job(conn.name, conn.spec, run, b.settings)
    identity = (
        oauth2_identity(conn.name, conn.namespace, conn.meta.uid, b.settings)
        if conn.spec.oauth2 is not None
        else ()
    )
    b.decision.actions.append(StartRun(run, conn, manifest, identity))


def _last_run(b: _Builder) -> dict[str, object] | None:
    """The connection's lastRun* fields from the newest run that started and ended (counting
    runs that end in this reconcile), or None when no run in memory did."""
    best: tuple[datetime, str] | None = None
    found: dict[str, object] | None = None
    for run in b.state.runs:
        if run.name in b.ended:
            _, phase, obs = b.ended[run.name]
            start = obs.start_time if obs else run.status.start_time
            result = obs.result if obs else None
            attempts = obs.attempts if obs else run.status.attempts
        elif run.terminal and run.phase is not None:
            phase, start, result = run.phase, run.status.start_time, run.status.result
            attempts = run.status.attempts
        else:
            continue
        if start is None:
            continue  # never got a Job (refused, cancelled while queued): not a "last run"
        if best is None or (start, run.name) > best:
            best = (start, run.name)
            b.last_phase = phase
            found = {
                "lastRunAt": format_time(start),
                "lastRunSuccess": phase is RunPhase.SUCCEEDED,
                "lastRunError": result.error if result else None,
                "lastRunDurationMs": result.duration_ms if result else None,
                "lastRunAttempts": attempts,
                "lastRunName": run.name,
            }
    return found


def _last_success(b: _Builder) -> datetime | None:
    """When the newest successful run in memory ended (runs ending in this reconcile count)."""
    newest: datetime | None = None
    for run in b.state.runs:
        phase: RunPhase | None
        if run.name in b.ended:
            _, phase, obs = b.ended[run.name]
            end = obs.completion_time if obs else run.status.completion_time
        else:
            phase, end = run.phase, run.status.completion_time
        if phase is RunPhase.SUCCEEDED and end is not None and (newest is None or end > newest):
            newest = end
    return newest


def _connection_status(
    b: _Builder, conn: ConnectionView, problems: list[validation.Problem]
) -> None:
    """Ready, observedGeneration and lastRun*, into the one connection patch."""
    status = conn.status
    gen = conn.meta.generation
    if problems:
        cond = dict(
            status=ConditionStatus.FALSE, reason=problems[0].reason, message=problems[0].message
        )
    else:
        cond = dict(status=ConditionStatus.TRUE, reason="Valid", message="")
    old = find_condition(status.conditions, CONDITION_READY)
    if (
        old is None
        or old.status != cond["status"]
        or old.reason != cond["reason"]
        or old.message != cond["message"]
        or old.observed_generation != gen
        or status.observed_generation != gen
    ):
        conditions = with_condition(
            status.conditions,
            type_=CONDITION_READY,
            now=b.now,
            observed_generation=gen,
            **cond,  # type: ignore[arg-type]
        )
        b.conn_patch["conditions"] = conditions_json(conditions)
        b.conn_patch["observedGeneration"] = gen
        changed = old is None or old.reason != cond["reason"] or old.message != cond["message"]
        if problems and changed:
            b.conn_events += b.event(
                connection_ref(conn), "Warning", problems[0].reason, problems[0].message
            )
    success = _last_success(b)
    if success is not None and (
        status.last_success_time is None or success > status.last_success_time
    ):
        b.conn_patch["lastSuccessTime"] = format_time(success)
    last = _last_run(b)
    if last is None:
        return
    current = status.model_dump(by_alias=True, mode="json")
    known = status.last_run_at
    at = last["lastRunAt"]
    newer_or_same = known is None or (isinstance(at, str) and (format_time(known) or "") <= at)
    if newer_or_same and any(current.get(k) != v for k, v in last.items()):
        announce = status.last_run_name != last["lastRunName"]
        b.conn_patch.update(last)
        if announce:
            phase = b.last_phase or RunPhase.FAILED
            text = f"run {last['lastRunName']} {phase.value.lower()}"
            kind = "Warning" if phase is RunPhase.FAILED else "Normal"
            b.conn_events += b.event(connection_ref(conn), kind, f"Run{phase.value}", text)


def _schedule(b: _Builder, conn: ConnectionView) -> None:
    spec = conn.spec
    assert spec is not None
    if not spec.schedule or spec.suspend or not spec.enabled:
        return
    last = conn.status.last_schedule_time
    created = conn.meta.creation_timestamp or b.now
    if last is None and conn.meta.generation > 1:
        # a schedule added to (or changed on) an existing connection counts from now: it does
        # not fire for a tick that passed before it existed. A connection created with its
        # schedule counts from its creation (a tick missed while the operator was down runs).
        b.decision.actions.append(
            PatchConnectionStatus(conn, {"lastScheduleTime": format_time(b.now)})
        )
        last = b.now
    due = schedule.due(spec.schedule, spec.time_zone, last=last, created=created, now=b.now)

    if due is not None:
        name = scheduled_run_name(conn.name, due.tick)
        if all(r.name != name for r in b.state.runs):
            manifest = run_manifest(
                conn.name,
                Trigger.SCHEDULE,
                name=name,
                namespace=conn.namespace,
                scheduled_time=due.tick,
            )
            tick = format_time(due.tick)
            events = b.event(
                connection_ref(conn), "Normal", "Scheduled", f"tick {tick}: run {name}"
            )
            if due.skipped:
                events += b.event(
                    connection_ref(conn),
                    "Warning",
                    "MissedSchedule",
                    f"{due.skipped} earlier tick(s) were missed; ran only the latest ({tick})",
                )
            b.decision.actions.append(CreateRun(manifest, events))
        # after the run exists: a tick is recorded only once its run was made
        b.decision.actions.append(
            PatchConnectionStatus(conn, {"lastScheduleTime": format_time(due.tick)})
        )
    nxt = schedule.next_tick(spec.schedule, spec.time_zone, after=b.now)
    b.decision.after((nxt - b.now).total_seconds() + 0.5)


def _retention(b: _Builder, conn: ConnectionView | None) -> None:
    """Finished runs beyond historyLimit (or all of them, a while after the connection is
    gone) — never one whose batch has not recorded its outcome."""
    finished: list[FinishedRef] = []
    for run in b.state.runs:
        if not (run.terminal or run.name in b.ended):
            continue
        if run.name in b.ended:
            continue  # its end is being written now; prune it on the next pass
        end = run.status.completion_time or run.metadata.creation_timestamp or b.now
        batch_name = batch_label(run.metadata)
        batch = b.state.batches.get(batch_name) if batch_name else None
        held = batch is not None and not recorded_terminal(batch, run.name)
        seq = run.status.sequence or run.metadata.rv()
        finished.append(FinishedRef(name=run.name, finished=end, sequence=seq, held=held))
    by_name = {r.name: r for r in b.state.runs}
    if conn is not None:
        limit = conn.spec.history_limit if conn.spec else 10
        doomed = to_delete(finished, limit)
        why = f"beyond historyLimit {limit}"
    else:
        grace = timedelta(seconds=b.settings.orphan_grace_seconds)
        doomed = [f.name for f in finished if not f.held and f.finished + grace <= b.now]
        later = [f.finished + grace for f in finished if f.finished + grace > b.now]
        if later:
            b.decision.after((min(later) - b.now).total_seconds())
        why = "its connection is gone"
    for name in doomed:
        b.decision.actions.append(DeleteRun(by_name[name], why))
