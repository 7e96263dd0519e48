"""PipelineRun lifecycle: concurrency admission, the Job, status from the Job, cancel, the end.

Every decision about one connection's runs happens under that connection's lock, reading
fresh objects from the apiserver, so handlers triggered by different events (run created,
Job changed, pod changed, timer, restart) can run in any order and any number of times.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import kopf

from datapipelines.resources import (
    CONNECTION_PLURAL,
    LABEL_BATCH,
    LABEL_CONNECTION,
    LABEL_TRIGGER,
    RUN_PLURAL,
)
from datapipelines.resources.models import (
    CONDITION_SUCCEEDED,
    PHASE_CONDITION_STATUS,
    ConcurrencyPolicy,
    RunPhase,
    get_condition,
    is_terminal,
    set_condition,
)

from .. import events
from ..concurrency import RunRef, plan
from ..context import Context, now_iso, parse_iso
from ..jobs import render_job
from ..retention import FinishedRef, to_delete
from ..status import (
    REASON_CONNECTION_INVALID,
    REASON_CONNECTION_NOT_FOUND,
    Observed,
    derive,
)
from ..validation import validate_connection

log = logging.getLogger(__name__)

#: How long a run waits for a connection that does not exist (yet) before it fails.
CONNECTION_GRACE_SECONDS = 30


def _meta(obj: dict[str, Any]) -> dict[str, Any]:
    return obj.get("metadata") or {}


def _spec(obj: dict[str, Any]) -> dict[str, Any]:
    return obj.get("spec") or {}


def _status(obj: dict[str, Any]) -> dict[str, Any]:
    return obj.get("status") or {}


def _phase(run: dict[str, Any]) -> str | None:
    return _status(run).get("phase")


def _age_seconds(obj: dict[str, Any]) -> float:
    created = parse_iso(_meta(obj).get("creationTimestamp"))
    if created is None:
        return 0.0
    return (datetime.now(UTC) - created).total_seconds()


def owned_by(job: dict[str, Any], run: dict[str, Any]) -> bool:
    uid = _meta(run).get("uid")
    return any(ref.get("uid") == uid for ref in _meta(job).get("ownerReferences") or [])


def _job_finished(job: dict[str, Any]) -> bool:
    return any(
        c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
        for c in (job.get("status") or {}).get("conditions") or []
    )


class Outcome:
    """Side effects a locked section asks the caller to do after releasing the lock."""

    def __init__(self) -> None:
        self.batches: set[str] = set()
        self.retry_after: float | None = None

    def merge(self, other: Outcome) -> Outcome:
        self.batches |= other.batches
        if other.retry_after is not None:
            self.retry_after = min(self.retry_after or other.retry_after, other.retry_after)
        return self


# ---------------------------------------------------------------------------- status writes


async def _write_phase(
    ctx: Context,
    run: dict[str, Any],
    phase: RunPhase,
    message: str,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any] | None:
    """Patch phase + the Succeeded condition (+ extra fields) when anything changes."""
    status = _status(run)
    now = now_iso()
    conditions = set_condition(
        status.get("conditions"),
        type_=CONDITION_SUCCEEDED,
        status=PHASE_CONDITION_STATUS[phase].value,
        reason=phase.value,
        message=message,
        now=now,
        observed_generation=_meta(run).get("generation"),
    )
    patch: dict[str, Any] = {
        "phase": phase.value,
        "conditions": conditions,
        "observedGeneration": _meta(run).get("generation"),
        **(extra or {}),
    }
    if not status.get("queuedAt"):
        patch["queuedAt"] = _meta(run).get("creationTimestamp") or now
    old = get_condition(status.get("conditions"), CONDITION_SUCCEEDED) or {}
    unchanged = (
        old.get("reason") == phase.value
        and old.get("message") == message
        and all(status.get(k) == v for k, v in patch.items() if k != "conditions")
    )
    if unchanged:
        return run
    ns, name = _meta(run)["namespace"], _meta(run)["name"]
    return await ctx.kube.patch_status(ns, RUN_PLURAL, name, patch)


async def _record_end(
    ctx: Context, conn: dict[str, Any] | None, run: dict[str, Any], obs: Observed
) -> Outcome:
    """Write a terminal state once, then everything that follows from it (not the queue)."""
    outcome = Outcome()
    meta = _meta(run)
    ns, name = meta["namespace"], meta["name"]
    conn_name = _spec(run).get("connectionName", "")
    # A merge patch merges objects: null out keys of an older result (e.g. a failed attempt's
    # error) that the final result does not have.
    result_patch: dict[str, Any] = dict(obs.result or {})
    for key in _status(run).get("result") or {}:
        result_patch.setdefault(key, None)
    extra: dict[str, Any] = {
        "completionTime": obs.completion_time or now_iso(),
        "attempts": obs.attempts,
        "result": result_patch,
    }
    if obs.start_time:
        extra["startTime"] = obs.start_time
    if conn is not None:
        # The connection first: whoever sees the run finished also sees it as the last run
        # (if it ever got a Job) and no longer among the active ones.
        final = {**run, "status": {**_status(run), "phase": obs.phase.value, **extra}}
        final["status"]["result"] = obs.result
        if obs.start_time:
            await _update_connection_last_run(ctx, conn, final)
        elif name in (_status(conn).get("activeRuns") or []):
            active = [n for n in _status(conn).get("activeRuns") or [] if n != name]
            fresh = await ctx.kube.patch_status(
                ns, CONNECTION_PLURAL, conn_name, {"activeRuns": active}
            )
            if fresh is not None:
                conn["status"] = _status(fresh)
    updated = await _write_phase(ctx, run, obs.phase, obs.message, extra)
    if updated is None:  # the run was deleted meanwhile
        return outcome
    result = obs.result or {}
    log.info(
        "run %s/%s ended %s",
        ns,
        name,
        obs.phase.value,
        extra={"run": name, "connection": conn_name, "phase": obs.phase.value},
    )
    if obs.phase is RunPhase.SUCCEEDED:
        rows = result.get("rowsInserted")
        text = f"run succeeded after {obs.attempts} attempt(s); rows inserted: {rows}"
        await events.post(ctx.kube, updated, "Normal", "Succeeded", text)
    elif obs.phase is RunPhase.CANCELLED:
        text = f"run cancelled: {obs.message}"
        await events.post(ctx.kube, updated, "Normal", "Cancelled", text)
    else:
        text = f"run failed: {obs.message}"
        await events.post(ctx.kube, updated, "Warning", "Failed", text)
    events.count_finished(ns, conn_name, obs.phase.value, result.get("durationMs"))
    if ctx.archive is not None:
        await ctx.archive.insert(updated)
    if conn is not None and obs.start_time:
        await events.post(
            ctx.kube,
            conn,
            "Warning" if obs.phase is RunPhase.FAILED else "Normal",
            f"Run{obs.phase.value}",
            f"run {name}: {text}",
        )
    batch = (meta.get("labels") or {}).get(LABEL_BATCH)
    if batch:
        outcome.batches.add(batch)
    return outcome


async def _update_connection_last_run(
    ctx: Context, conn: dict[str, Any], run: dict[str, Any]
) -> None:
    """lastRun* of the connection, unless it already shows a run that started later."""
    cstatus = _status(conn)
    rstatus = _status(run)
    started = rstatus.get("startTime")
    known = parse_iso(cstatus.get("lastRunAt"))
    if known is not None and started and parse_iso(started) < known:  # type: ignore[operator]
        return
    if cstatus.get("lastRunName") == _meta(run)["name"] and known is not None:
        return
    result = rstatus.get("result") or {}
    fresh = await ctx.kube.patch_status(
        _meta(conn)["namespace"],
        CONNECTION_PLURAL,
        _meta(conn)["name"],
        {
            "lastRunAt": started,
            "lastRunSuccess": rstatus.get("phase") == RunPhase.SUCCEEDED.value,
            "lastRunError": result.get("error"),
            "lastRunDurationMs": result.get("durationMs"),
            "lastRunAttempts": rstatus.get("attempts"),
            "lastRunName": _meta(run)["name"],
            "activeRuns": [n for n in cstatus.get("activeRuns") or [] if n != _meta(run)["name"]],
        },
    )
    if fresh is not None:
        conn["status"] = _status(fresh)  # callers holding this dict see the new state


# ---------------------------------------------------------------------------- the queue


async def _start(ctx: Context, conn: dict[str, Any], run: dict[str, Any]) -> Outcome:
    """Create the run's Job (or adopt the one that exists) and mark the run Running."""
    outcome = Outcome()
    meta = _meta(run)
    ns, name = meta["namespace"], meta["name"]
    manifest = render_job(conn, run, ctx.settings)
    job = await ctx.kube.create_job(ns, manifest, tolerate_409=True)
    created = job is not None
    if job is None:
        job = await ctx.kube.get_job(ns, name)
        if job is None or not owned_by(job, run):
            # A Job of that name that is not ours (a deleted run's, being collected): wait.
            log.warning("run %s/%s: a Job with its name exists and is not its own", ns, name)
            outcome.retry_after = 10
            return outcome
    updated = await _write_phase(
        ctx,
        run,
        RunPhase.RUNNING,
        "Job created, waiting for its pod",
        {
            "startTime": _status(run).get("startTime") or _meta(job).get("creationTimestamp"),
            "jobName": name,
            "attempts": int(_status(run).get("attempts") or 0),
        },
    )
    if created:
        events.RUNS_STARTED.labels(ns, _spec(run)["connectionName"]).inc()
        await events.post(ctx.kube, updated, "Normal", "Started", f"created Job {name}")
        log.info("run %s/%s started", ns, name, extra={"run": name})
    batch = (meta.get("labels") or {}).get(LABEL_BATCH)
    if batch:
        outcome.batches.add(batch)
    return outcome


async def _end_without_job(
    ctx: Context, conn: dict[str, Any] | None, run: dict[str, Any], phase: RunPhase, message: str
) -> Outcome:
    obs = Observed(
        phase=phase,
        message=message,
        attempts=int(_status(run).get("attempts") or 0),
        completion_time=now_iso(),
        result={"success": False, "error": message, "durationMs": 0},
    )
    return await _record_end(ctx, conn, run, obs)


async def reconcile_connection(ctx: Context, ns: str, conn_name: str) -> Outcome:
    async with ctx.connection_lock(ns, conn_name):
        outcome = await _reconcile_connection_locked(ctx, ns, conn_name)
    from .batches import reconcile_batches

    await reconcile_batches(ctx, ns, outcome.batches)
    return outcome


async def _reconcile_connection_locked(
    ctx: Context, ns: str, conn_name: str, *, run_ended: bool = False
) -> Outcome:
    """Apply the connection's concurrency policy to all its runs (see concurrency.plan),
    then the history limit when a run has ended."""
    outcome = Outcome()
    conn = await ctx.kube.get_connection(ns, conn_name)
    runs = {(_meta(r)["name"]): r for r in await ctx.kube.runs_of_connection(ns, conn_name)}
    pending = [r for r in runs.values() if _phase(r) in (None, "", RunPhase.QUEUED.value)]

    if conn is None:
        for run in pending:
            if _age_seconds(run) < CONNECTION_GRACE_SECONDS and not _spec(run).get(
                "cancelRequested"
            ):
                outcome.retry_after = 10
                continue
            msg = f"{REASON_CONNECTION_NOT_FOUND}: PipelineConnection {conn_name!r} does not exist"
            if _spec(run).get("cancelRequested"):
                outcome.merge(
                    await _end_without_job(
                        ctx, None, run, RunPhase.CANCELLED, "cancelled before it started"
                    )
                )
            else:
                outcome.merge(await _end_without_job(ctx, None, run, RunPhase.FAILED, msg))
        return outcome

    problem = validate_connection(_spec(conn))
    if problem is not None:
        for run in pending:
            msg = f"{REASON_CONNECTION_INVALID}: {problem[0]}: {problem[1]}"
            outcome.merge(await _end_without_job(ctx, conn, run, RunPhase.FAILED, msg))
            runs.pop(_meta(run)["name"], None)
        pending = []

    refs = [
        RunRef(
            name=name,
            created=_meta(r).get("creationTimestamp") or "",
            phase=_phase(r),
            cancel_requested=bool(_spec(r).get("cancelRequested")),
        )
        for name, r in runs.items()
    ]
    policy = _spec(conn).get("concurrencyPolicy") or ConcurrencyPolicy.FORBID.value
    decision = plan(policy, refs)

    for name, msg in decision.cancel:
        outcome.merge(await _end_without_job(ctx, conn, runs[name], RunPhase.CANCELLED, msg))
    for name, msg in decision.fail:
        outcome.merge(await _end_without_job(ctx, conn, runs[name], RunPhase.FAILED, msg))
    for name, msg in decision.stop:
        await request_cancel(ctx, runs[name], msg)
    for name in decision.start:
        outcome.merge(await _start(ctx, conn, runs[name]))
    for name in decision.queue:
        run = runs[name]
        blocker = next((n for n in decision.active if n not in decision.queue), None)
        msg = (
            f"waiting for run {blocker} of this connection to end (concurrency policy {policy})"
            if blocker
            else f"waiting for an earlier run of this connection (concurrency policy {policy})"
        )
        was = _phase(run)
        await _write_phase(ctx, run, RunPhase.QUEUED, msg)
        if was != RunPhase.QUEUED.value:
            await events.post(ctx.kube, run, "Normal", "Queued", msg)

    if run_ended or decision.cancel or decision.fail or problem is not None:
        await apply_retention(ctx, ns, conn_name, conn)
    events.RUNS_QUEUED.labels(ns, conn_name).set(len(decision.queue))
    events.RUNS_ACTIVE.labels(ns, conn_name).set(len(decision.active))
    if (_status(conn).get("activeRuns") or []) != decision.active:
        await ctx.kube.patch_status(
            ns, CONNECTION_PLURAL, conn_name, {"activeRuns": decision.active}
        )
    return outcome


async def request_cancel(ctx: Context, run: dict[str, Any], why: str) -> None:
    """Mark a run cancel-requested (the cancel handler then deletes its Job)."""
    meta = _meta(run)
    if not _spec(run).get("cancelRequested"):
        await ctx.kube.patch(
            meta["namespace"], RUN_PLURAL, meta["name"], {"spec": {"cancelRequested": True}}
        )
        await events.post(ctx.kube, run, "Normal", "CancelRequested", why)
    await ctx.kube.delete_job(meta["namespace"], meta["name"])


# ---------------------------------------------------------------------------- one run


async def sync_run(ctx: Context, ns: str, name: str) -> Outcome:
    """Bring one run's status up to date with its Job and pods (any number of times)."""
    run = await ctx.kube.get_run(ns, name)
    if run is None or is_terminal(_phase(run)):
        return Outcome()
    conn_name = _spec(run).get("connectionName", "")
    async with ctx.connection_lock(ns, conn_name):
        outcome = await _sync_run_locked(ctx, ns, name)
    from .batches import reconcile_batches

    await reconcile_batches(ctx, ns, outcome.batches)
    return outcome


async def _sync_run_locked(ctx: Context, ns: str, name: str) -> Outcome:
    run = await ctx.kube.get_run(ns, name)
    if run is None or is_terminal(_phase(run)):
        return Outcome()
    conn_name = _spec(run)["connectionName"]
    if _phase(run) != RunPhase.RUNNING.value:
        return await _reconcile_connection_locked(ctx, ns, conn_name)

    cancel = bool(_spec(run).get("cancelRequested"))
    job = await ctx.kube.get_job(ns, name)
    if job is not None and not owned_by(job, run):
        job = None
    if job is not None and cancel and not _job_finished(job):
        await ctx.kube.delete_job(ns, name)
        job = await ctx.kube.get_job(ns, name)
        if job is not None and not owned_by(job, run):
            job = None
        if job is not None and not _meta(job).get("deletionTimestamp"):
            outcome = Outcome()
            outcome.retry_after = 2
            return outcome
        job = None
    pods = await ctx.kube.pods_of_run(ns, name)
    obs = derive(
        job=job, pods=pods, run_status=_status(run), cancel_requested=cancel, now=now_iso()
    )
    if not obs.terminal:
        await _write_phase(
            ctx,
            run,
            RunPhase.RUNNING,
            obs.message,
            {"attempts": obs.attempts, "startTime": obs.start_time, "jobName": name},
        )
        return Outcome()
    conn = await ctx.kube.get_connection(ns, conn_name)
    outcome = await _record_end(ctx, conn, run, obs)
    outcome.merge(await _reconcile_connection_locked(ctx, ns, conn_name, run_ended=True))
    return outcome


async def apply_retention(
    ctx: Context, ns: str, conn_name: str, conn: dict[str, Any] | None
) -> list[str]:
    """Delete finished runs beyond the connection's historyLimit (never an active one)."""
    if conn is None:
        return []
    limit = int(_spec(conn).get("historyLimit", 10))
    runs = await ctx.kube.runs_of_connection(ns, conn_name)
    refs = [
        FinishedRef(
            name=_meta(r)["name"],
            phase=_phase(r),
            finished=_status(r).get("completionTime") or _meta(r).get("creationTimestamp") or "",
        )
        for r in runs
    ]
    doomed = to_delete(refs, limit)
    by_name = {_meta(r)["name"]: r for r in runs}
    for name in doomed:
        if ctx.archive is not None:
            await ctx.archive.insert(by_name[name])
        await ctx.kube.delete(ns, RUN_PLURAL, name)
    if doomed:
        log.info("retention: deleted %d finished run(s) of %s/%s", len(doomed), ns, conn_name)
    return doomed


# ---------------------------------------------------------------------------- kopf entry points


async def ensure_labels(ctx: Context, run: dict[str, Any]) -> None:
    """Label the run with its connection and trigger (API-made runs already have them)."""
    meta, spec = _meta(run), _spec(run)
    labels = meta.get("labels") or {}
    wanted = {LABEL_CONNECTION: spec.get("connectionName"), LABEL_TRIGGER: spec.get("trigger")}
    missing = {k: v for k, v in wanted.items() if v and labels.get(k) != v}
    if missing:
        await ctx.kube.patch(
            meta["namespace"], RUN_PLURAL, meta["name"], {"metadata": {"labels": missing}}
        )


async def on_run_seen(ctx: Context, body: dict[str, Any]) -> None:
    """A run was created, or the operator (re)started: bring it forward."""
    if is_terminal(_phase(body)):
        return
    await ensure_labels(ctx, body)
    outcome = await sync_run(ctx, _meta(body)["namespace"], _meta(body)["name"])
    if outcome.retry_after is not None:
        raise kopf.TemporaryError("not ready yet (see the run's status)", delay=outcome.retry_after)


async def on_cancel_requested(ctx: Context, body: dict[str, Any]) -> None:
    if not _spec(body).get("cancelRequested") or is_terminal(_phase(body)):
        return
    await events.post(
        ctx.kube, body, "Normal", "CancelRequested", "cancel requested: stopping the run"
    )
    outcome = await sync_run(ctx, _meta(body)["namespace"], _meta(body)["name"])
    if outcome.retry_after is not None:
        raise kopf.TemporaryError("waiting for the Job to go away", delay=outcome.retry_after)


async def on_run_deleted(ctx: Context, body: dict[str, Any]) -> None:
    """A run object is gone: let the connection's queue and the batch move on."""
    conn_name = _spec(body).get("connectionName")
    ns = _meta(body)["namespace"]
    if conn_name:
        await reconcile_connection(ctx, ns, conn_name)
    batch = (_meta(body).get("labels") or {}).get(LABEL_BATCH)
    if batch:
        from .batches import reconcile_batches

        await reconcile_batches(ctx, ns, {batch})


async def on_child_event(ctx: Context, ns: str, run_name: str | None) -> None:
    """A Job or pod of a run changed (or was deleted)."""
    if run_name:
        await sync_run(ctx, ns, run_name)
