"""Applies a reconcile's actions: the only place the operator writes to the apiserver.

Every write goes through :class:`Kube` (a deadline each, the leadership guard), and what the
apiserver answers goes into the store's overlay so the next reconcile reads its own writes.
Terminal run statuses carry a resourceVersion precondition: a stale view never overwrites a
newer state (a conflict only means "look again").
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import quote

from kubernetes_asyncio.client.exceptions import ApiException

from datapipelines.resources import (
    BATCH_PLURAL,
    CONNECTION_PLURAL,
    RUN_PLURAL,
)
from datapipelines.resources.connection import CONDITION_READY
from datapipelines.resources.meta import ConditionStatus, conditions_json, with_condition
from datapipelines.resources.run import PipelineRun, ResultSource, RunPhase, RunResult
from datapipelines.resources.times import utcnow

from . import events
from .archive import Archive
from .config import Settings
from .kube import MERGE_PATCH, Kube, NotLeading, api_error_message
from .reconcile.actions import (
    Action,
    CreateRun,
    DeleteBatch,
    DeleteJob,
    DeleteRun,
    Event,
    LabelRun,
    PatchBatchStatus,
    PatchConnectionStatus,
    PatchRunStatus,
    ReadPodWarning,
    StartRun,
    connection_ref,
    run_ref,
)
from .reconcile.runstatus import run_patch, started_patch
from .status import REASON_JOB_QUOTA, REASON_JOB_REJECTED
from .store import Store
from .views import batch_view, connection_view, job_view, run_view

log = logging.getLogger("datapipelines.operator")

#: Seconds until a key whose write hit a conflict (a stale view) is looked at again.
CONFLICT_RETRY = 1.0
#: How often a run whose Job a full ResourceQuota refused is tried again.
QUOTA_RETRY = 10.0
ARCHIVE_RETRY = 60.0


@dataclass
class Outcome:
    requeue_after: float | None = None
    wake: set[tuple[str, ...]] = field(default_factory=set)

    def after(self, seconds: float) -> None:
        if self.requeue_after is None or seconds < self.requeue_after:
            self.requeue_after = seconds


class Executor:
    def __init__(
        self, kube: Kube, store: Store, settings: Settings, archive: Archive | None = None
    ) -> None:
        self.kube = kube
        self.store = store
        self.settings = settings
        self.archive = archive
        self._kept: set[str] = set()
        """Runs retention keeps because the archive does not hold them yet (logged once)."""

    async def apply(self, actions: list[Action]) -> Outcome:
        out = Outcome()
        self._written: dict[tuple[str, str], str] = {}  # run → resourceVersion we wrote
        for action in actions:
            try:
                await self._one(action, out)
            except NotLeading:
                raise
            except ApiException as exc:
                if exc.status == 409:
                    out.after(CONFLICT_RETRY)
                    log.debug("conflict on %s: %s", type(action).__name__, api_error_message(exc))
                    return out  # the rest was decided from the same stale view
                raise
        return out

    async def _one(self, action: Action, out: Outcome) -> None:
        match action:
            case LabelRun():
                run = action.run
                obj = await self.kube.request(
                    "PATCH",
                    self.kube.custom(run.namespace, RUN_PLURAL, run.name),
                    body={"metadata": {"labels": action.labels}},
                    content_type=MERGE_PATCH,
                    tolerate=(404,),
                )
                if obj is not None:
                    self._remember_run(obj)
            case PatchRunStatus():
                await self._patch_run(action, out)
            case StartRun():
                await self._start(action, out)
            case DeleteJob():
                await self._delete_job(action.run, action.job.uid, action.job.name, action.why)
            case ReadPodWarning():
                await self._read_pod_warning(action, out)
            case PatchConnectionStatus():
                conn = action.connection
                obj = await self.kube.patch_status(
                    conn.namespace, CONNECTION_PLURAL, conn.name, action.patch
                )
                if obj is None:
                    self.store.forget(conn.meta.uid)
                else:
                    self.store.remember("conn", connection_view(obj), conn.namespace, conn.name)
                await self._events(action.events)
            case CreateRun():
                meta = action.manifest["metadata"]
                obj = await self.kube.create(meta["namespace"], RUN_PLURAL, action.manifest)
                if obj is not None:
                    view = run_view(obj)
                    if view is not None:
                        self.store.remember("run", view, view.namespace, view.name, created=True)
                    await self._events(action.events)
            case DeleteRun():
                await self._delete_run(action, out)
            case PatchBatchStatus():
                batch = action.batch
                ns, name = batch.metadata.namespace, batch.metadata.name
                obj = await self.kube.patch_status(ns, BATCH_PLURAL, name, action.patch)
                if obj is not None and (bview := batch_view(obj)) is not None:
                    self.store.remember("batch", bview, ns, name)
                await self._events(action.events)
            case DeleteBatch():
                meta = action.batch.metadata
                await self.kube.delete(
                    self.kube.custom(meta.namespace, BATCH_PLURAL, meta.name), uid=meta.uid
                )
                self.store.forget(meta.uid)
                log.info("batch %s/%s deleted: %s", meta.namespace, meta.name, action.why)

    # ------------------------------------------------------------------ runs

    async def _read_pod_warning(self, action: ReadPodWarning, out: Outcome) -> None:
        """The pod's newest Warning event, remembered for the next reconcile (which fails the
        run naming it); "" when there is none or it cannot be read (the run then fails with
        what the pod's status says)."""
        pod = action.pod
        warning = ""
        try:
            listed = await self.kube.request(
                "GET",
                f"/api/v1/namespaces/{quote(pod.namespace)}/events",
                query={
                    "fieldSelector": f"involvedObject.uid={pod.uid},type=Warning",
                    "limit": 100,
                },
                deadline=5,
            )
            warning = newest_warning((listed or {}).get("items") or [])
        except NotLeading:
            raise
        except Exception as exc:  # events are a courtesy: never block the run's end on them
            log.warning("cannot read the events of pod %s: %s", pod.name, exc)
        self.store.remember_pod_warning(pod.uid, warning)
        out.after(0.05)

    def _remember_run(self, obj: dict[str, Any]) -> None:
        view = run_view(obj)
        if view is not None:
            self.store.remember("run", view, view.namespace, view.name)
            self._written[(view.namespace, view.name)] = view.metadata.resource_version

    async def _patch_run(self, action: PatchRunStatus, out: Outcome) -> None:
        run = action.run
        rv = None
        if action.precondition:  # the version this decision saw, or the one it just wrote
            rv = self._written.get((run.namespace, run.name), run.metadata.resource_version)
        obj = await self.kube.patch_status(
            run.namespace, RUN_PLURAL, run.name, action.patch, resource_version=rv
        )
        if obj is None:
            self.store.forget(run.metadata.uid)  # the run is gone
            return
        self._remember_run(obj)
        if action.phase.terminal:
            self._count_end(run, action)
            if self.archive is not None:
                await self.archive.insert(obj)
            log.info(
                "run %s/%s ended %s",
                run.namespace,
                run.name,
                action.phase.value,
                extra={"run": run.name, "connection": run.spec.connection_name},
            )
        await self._events(action.events)
        if action.delete_job is not None:
            await self._delete_job(run, action.delete_job.uid, action.delete_job.name, "run ended")

    def _count_end(self, run: PipelineRun, action: PatchRunStatus) -> None:
        ns, conn = run.namespace, run.spec.connection_name
        events.RUNS_FINISHED.labels(ns, conn, action.phase.value).inc()
        result = action.patch.get("result") or {}
        duration = result.get("durationMs")
        if duration is not None and action.phase is not RunPhase.CANCELLED:
            events.RUN_DURATION.labels(ns).observe(duration / 1000)

    async def _start(self, action: StartRun, out: Outcome) -> None:
        run = action.run
        now = utcnow()
        try:
            for owned in action.identity:  # the runner's own identity first (exists: fine)
                await self.kube.create_if_absent(owned)
            job = await self.kube.create_job(run.namespace, action.manifest)
        except ApiException as exc:
            if exc.status == 409:  # ours, not yet in the index, or a foreign one: look again
                out.after(CONFLICT_RETRY)
                return
            if exc.status in (400, 403, 404, 422):  # not retryable as it is
                await self._refused(action, exc.status, api_error_message(exc), out)
                return
            raise
        jv = job_view(job)
        self.store.remember("job", jv, jv.namespace, jv.name, created=True)
        events.RUNS_STARTED.labels(run.namespace, run.spec.connection_name).inc()
        patch = started_patch(run, jv.name, jv.uid, jv.created, now)
        if patch is not None:
            obj = await self.kube.patch_status(run.namespace, RUN_PLURAL, run.name, patch)
            if obj is not None:
                self._remember_run(obj)
        log.info("run %s/%s started", run.namespace, run.name, extra={"run": run.name})
        if self.settings.events == "all":
            await self._events(
                (Event(run_ref(run), "Normal", "Started", f"created Job {jv.name}"),)
            )

    async def _refused(self, action: StartRun, status: int, why: str, out: Outcome) -> None:
        """The apiserver refused the Job. A ResourceQuota that is full may free up: the run stays
        Queued with the reason, tried again every QUOTA_RETRY s, and fails once
        startTimeoutSeconds have passed since it was queued. Anything else (invalid, forbidden
        by RBAC or a policy webhook, namespace gone) fails the run now."""
        run, conn = action.run, action.connection
        now = utcnow()
        if status == 403 and "exceeded quota" in why:
            timeout = conn.spec.start_timeout_seconds if conn.spec is not None else 300
            queued = run.status.queued_at or run.metadata.creation_timestamp or now
            if now < queued + timedelta(seconds=timeout):
                message = (
                    f"{REASON_JOB_QUOTA}: the namespace's ResourceQuota refused the run's Job; "
                    f"trying again until {timeout} s after it was queued (startTimeoutSeconds): "
                    f"{why}"
                )
                patch = run_patch(run, RunPhase.QUEUED, message[:32000], now)
                if patch is not None:
                    obj = await self.kube.patch_status(run.namespace, RUN_PLURAL, run.name, patch)
                    if obj is not None:
                        self._remember_run(obj)
                out.after(QUOTA_RETRY)
                return
            await self._rejected(
                action,
                f"the namespace's ResourceQuota refused it for {timeout} s "
                f"(startTimeoutSeconds): {why}",
                reason=REASON_JOB_QUOTA,
            )
            return
        kind = {403: "forbade", 404: "could not find the namespace for"}.get(status, "refused")
        await self._rejected(action, why, verb=kind)

    async def _rejected(
        self, action: StartRun, why: str, *, verb: str = "refused", reason: str = ""
    ) -> None:
        """The apiserver refused the Job: the connection is not Ready, then the run fails."""
        run, conn = action.run, action.connection
        now = utcnow()
        reason = reason or REASON_JOB_REJECTED
        message = f"{reason}: the Kubernetes API {verb} the run's Job: {why}"
        patch = run_patch(
            run,
            RunPhase.FAILED,
            message,
            now,
            completion_time=now,
            attempts=0,
            result=RunResult(
                success=False, error=message, duration_ms=0, source=ResultSource.OPERATOR
            ),
        )
        # The connection first: whoever sees the run failed sees the connection not Ready.
        conditions = with_condition(
            conn.status.conditions,
            type_=CONDITION_READY,
            status=ConditionStatus.FALSE,
            reason=reason,
            message=message,
            now=now,
            observed_generation=conn.meta.generation,
        )
        obj = await self.kube.patch_status(
            conn.namespace,
            CONNECTION_PLURAL,
            conn.name,
            {"conditions": conditions_json(conditions), "observedGeneration": conn.meta.generation},
        )
        if obj is not None:
            self.store.remember("conn", connection_view(obj), conn.namespace, conn.name)
        if patch is not None:
            await self._patch_run(
                PatchRunStatus(
                    run,
                    patch,
                    RunPhase.FAILED,
                    precondition=True,
                    events=(Event(run_ref(run), "Warning", reason, message),),
                ),
                Outcome(),
            )
        await self._events((Event(connection_ref(conn), "Warning", reason, message),))

    async def _delete_job(self, run: PipelineRun, uid: str, name: str, why: str) -> None:
        try:
            gone = await self.kube.delete(self.kube.jobs(run.namespace, name), uid=uid)
        except ApiException as exc:
            if exc.status == 409:  # a different Job of that name now: not ours to delete
                return
            raise
        self.store.forget(uid)
        log.info("run %s/%s: Job deleted (%s)", run.namespace, run.name, why, extra={"gone": gone})

    async def _delete_run(self, action: DeleteRun, out: Outcome) -> None:
        run = action.run
        if self.archive is not None:
            raw = run.model_dump(by_alias=True, mode="json")
            if not await self.archive.insert(raw):
                out.after(ARCHIVE_RETRY)  # never delete a run the archive does not hold
                if run.metadata.uid not in self._kept:  # said once per run, not per reconcile
                    self._kept.add(run.metadata.uid)
                    log.warning(
                        "run %s/%s kept (%s): the history archive does not hold it yet",
                        run.namespace,
                        run.name,
                        action.why,
                        extra={"run": run.name},
                    )
                return
        try:
            await self.kube.delete(
                self.kube.custom(run.namespace, RUN_PLURAL, run.name), uid=run.metadata.uid
            )
        except ApiException as exc:
            if exc.status == 409:
                return
            raise
        self.store.forget(run.metadata.uid)
        self._kept.discard(run.metadata.uid)
        log.debug("run %s/%s deleted: %s", run.namespace, run.name, action.why)

    # ------------------------------------------------------------------ events

    async def post_events(self, items: tuple[Event, ...]) -> None:
        """Post Events (best effort), e.g. the controller's ReconcileFailed."""
        await self._events(items)

    async def _events(self, items: tuple[Event, ...]) -> None:
        for event in items:
            if not event.about.uid:
                continue
            try:
                await self.kube.post_event(event.about.namespace, events.event_body(event))
            except NotLeading:
                raise
            except Exception as exc:  # posting is best effort
                log.debug("could not post event %s: %s", event.reason, exc)


def newest_warning(events: list[dict[str, Any]]) -> str:
    """``Reason: message`` of the newest event (by last seen time), "" for none (pure)."""

    def seen(event: dict[str, Any]) -> str:
        series = event.get("series") or {}
        return str(
            series.get("lastObservedTime")
            or event.get("lastTimestamp")
            or event.get("eventTime")
            or (event.get("metadata") or {}).get("creationTimestamp")
            or ""
        )

    if not events:
        return ""
    newest = max(events, key=seen)
    reason, message = newest.get("reason") or "", " ".join(str(newest.get("message") or "").split())
    return f"{reason}: {message}"[:2000] if reason else message[:2000]
