"""Builders of the operator's typed objects from apiserver-shaped dicts, and a small world that
applies a decision's actions to those dicts (a pure stand-in for the executor + apiserver).

Every builder returns the dict (``*_body``) or its typed projection (``connection``, ``run``,
``job``, ``pod``, ``batch``), with the defaults a real object has: namespace ``ns1``, a uid, a
numeric resourceVersion and a creationTimestamp at or before the fixed ``NOW``.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from datapipelines.operator import views
from datapipelines.operator.config import Settings
from datapipelines.operator.reconcile import batch as batch_reconcile
from datapipelines.operator.reconcile import connection as connection_reconcile
from datapipelines.operator.reconcile.actions import (
    Action,
    CreateRun,
    Decision,
    DeleteBatch,
    DeleteJob,
    DeleteRun,
    LabelRun,
    PatchBatchStatus,
    PatchConnectionStatus,
    PatchRunStatus,
    ReadPodWarning,
    StartRun,
)
from datapipelines.operator.reconcile.runstatus import started_patch
from datapipelines.operator.store import Store
from datapipelines.operator.views import ConnectionView, JobView, PodView
from datapipelines.resources import (
    API_VERSION,
    LABEL_BATCH,
    LABEL_CONNECTION,
    LABEL_MANAGED_BY,
    LABEL_RUN,
    MANAGED_BY_OPERATOR,
)
from datapipelines.resources.batch import PipelineBatch
from datapipelines.resources.run import PipelineRun, RunPhase
from datapipelines.resources.times import format_time

NS = "ns1"
NOW = datetime(2026, 3, 2, 8, 0, 0, tzinfo=UTC)
"""The fixed "now" of every decision (a Monday, far from any DST change)."""

Body = dict[str, Any]
_uids = itertools.count(1)


def at(seconds: float = 0, *, base: datetime = NOW) -> datetime:
    """``NOW`` + seconds (negative: before)."""
    return base + timedelta(seconds=seconds)


def ts(value: datetime | float | str | None) -> str | None:
    """An apiserver timestamp from a datetime, an offset in seconds from NOW, or a string."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        value = at(value)
    return format_time(value)


class _Settings(Settings):
    """Settings from the arguments only: the developer's DATAPIPELINES_* variables never leak
    into a unit test."""

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: Any, init_settings: Any, **_: Any
    ) -> tuple[Any, ...]:
        return (init_settings,)


def settings(**overrides: Any) -> Settings:
    """Settings of a unit test: a warehouse claim (so the default DuckDB destination is Ready),
    every Kubernetes Event, the default sandbox and runner image."""
    base: dict[str, Any] = {
        "namespace": NS,
        "warehouse_claim": "warehouse",
        "kube_api": "https://10.0.0.1:443",
        "events": "all",
    }
    base.update(overrides)
    return _Settings(**base)


def _meta(
    name: str,
    *,
    uid: str | None,
    rv: int | str,
    created: datetime | float | str | None,
    generation: int | None = None,
    labels: Mapping[str, str] | None = None,
    namespace: str = NS,
    deleting: bool = False,
    owners: Iterable[Mapping[str, Any]] = (),
) -> Body:
    meta: Body = {
        "name": name,
        "namespace": namespace,
        "uid": uid or f"uid-{name}",
        "resourceVersion": str(rv),
        "creationTimestamp": ts(created),
        "labels": dict(labels or {}),
    }
    if generation is not None:
        meta["generation"] = generation
    if deleting:
        meta["deletionTimestamp"] = ts(NOW)
    if owners:
        meta["ownerReferences"] = [dict(o) for o in owners]
    return meta


# --------------------------------------------------------------------------- connections


def rest_spec(**overrides: Any) -> Body:
    """A valid rest_api connection spec into the default DuckDB warehouse file."""
    spec: Body = {
        "type": "rest_api",
        "schemaName": "demo_data",
        "source": {
            "restApi": {
                "baseUrl": "http://source.example/",
                "resources": [{"name": "items", "endpoint": {"path": "items"}}],
            }
        },
    }
    spec.update(overrides)
    return spec


def postgres_destination(
    host: str = "pg.example", database: str = "dw", secret: str = "pg", key: str = "password"
) -> Body:
    return {
        "type": "postgres",
        "postgres": {
            "host": host,
            "database": database,
            "username": "loader",
            "passwordSecretRef": {"name": secret, "key": key},
        },
    }


def duckdb_on_volume(path: str = "/data/shared.duckdb", claim: str = "shared") -> Body:
    return {
        "type": "duckdb",
        "duckdb": {"path": path, "volume": {"persistentVolumeClaim": {"claimName": claim}}},
    }


def connection_body(
    name: str = "demo",
    *,
    spec: Mapping[str, Any] | None = None,
    status: Mapping[str, Any] | None = None,
    generation: int = 1,
    uid: str | None = None,
    rv: int | str = 10,
    created: datetime | float | str | None = -86400,
    **spec_overrides: Any,
) -> Body:
    """A PipelineConnection; ``spec`` replaces the default one, keyword arguments override its
    fields (camelCase)."""
    body_spec = copy.deepcopy(dict(spec)) if spec is not None else rest_spec()
    body_spec.update(spec_overrides)
    body: Body = {
        "apiVersion": API_VERSION,
        "kind": "PipelineConnection",
        "metadata": _meta(name, uid=uid, rv=rv, created=created, generation=generation),
        "spec": body_spec,
    }
    if status is not None:
        body["status"] = copy.deepcopy(dict(status))
    return body


def connection(name: str = "demo", **kwargs: Any) -> ConnectionView:
    return views.connection_view(connection_body(name, **kwargs))


def ready_status(generation: int = 1, **extra: Any) -> Body:
    """A connection status that says Ready=True at ``generation`` (what the operator wrote)."""
    return {
        "observedGeneration": generation,
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Valid",
                "message": "",
                "lastTransitionTime": ts(-3600),
                "observedGeneration": generation,
            }
        ],
        **extra,
    }


# --------------------------------------------------------------------------- runs


def run_body(
    name: str = "demo-aaaaa",
    conn: str = "demo",
    *,
    created: datetime | float | str | None = -60,
    rv: int | str = 100,
    uid: str | None = None,
    phase: str | RunPhase | None = None,
    status: Mapping[str, Any] | None = None,
    batch: str | None = None,
    cancel: bool = False,
    trigger: str = "api",
    generation: int = 1,
    bare: bool = False,
) -> Body:
    """A PipelineRun of connection ``conn``; ``phase`` sets status.phase (and nothing else);
    ``bare``: without the connection/trigger labels (made by hand, not by the API)."""
    labels = {} if bare else {LABEL_CONNECTION: conn, "datapipelines.io/trigger": trigger}
    if batch:
        labels[LABEL_BATCH] = batch
    body_status: Body = copy.deepcopy(dict(status or {}))
    if phase is not None:
        body_status["phase"] = str(phase)
    return {
        "apiVersion": API_VERSION,
        "kind": "PipelineRun",
        "metadata": _meta(
            name, uid=uid, rv=rv, created=created, generation=generation, labels=labels
        ),
        "spec": {"connectionName": conn, "trigger": trigger, "cancelRequested": cancel},
        "status": body_status,
    }


def running_status(
    job: str = "demo-aaaaa", started: datetime | float | str = -50, attempts: int = 1, **extra: Any
) -> Body:
    """The status the operator wrote when it created the run's Job."""
    return {
        "phase": "Running",
        "sequence": 100,
        "queuedAt": ts(-60),
        "startTime": ts(started),
        "jobName": job,
        "jobUid": f"uid-job-{job}",
        "attempts": attempts,
        "observedGeneration": 1,
        **extra,
    }


def finished_status(
    phase: str = "Succeeded",
    *,
    started: datetime | float | str | None = -600,
    completed: datetime | float | str | None = -500,
    **extra: Any,
) -> Body:
    return {
        "phase": phase,
        "sequence": 1,
        "startTime": ts(started),
        "completionTime": ts(completed),
        "attempts": 1,
        "result": {"success": phase == "Succeeded", "durationMs": 100000},
        **extra,
    }


def run(name: str = "demo-aaaaa", conn: str = "demo", **kwargs: Any) -> PipelineRun:
    view = views.run_view(run_body(name, conn, **kwargs))
    assert view is not None, "run_body built an unreadable run"
    return view


# --------------------------------------------------------------------------- Jobs and pods


def job_body(
    run_name: str = "demo-aaaaa",
    conn: str = "demo",
    *,
    run_uid: str | None = None,
    uid: str | None = None,
    rv: int | str = 200,
    created: datetime | float | str | None = -50,
    complete: bool = False,
    failed: tuple[str, str] | None = None,
    finished: datetime | float | str | None = -5,
    active: int = 0,
    failed_pods: int = 0,
    succeeded: int = 0,
    deleting: bool = False,
) -> Body:
    """The run's Job (owned by the run's uid unless ``run_uid`` says otherwise); ``failed`` is
    the Failed condition's (reason, message)."""
    owner = {
        "apiVersion": API_VERSION,
        "kind": "PipelineRun",
        "name": run_name,
        "uid": run_uid or f"uid-{run_name}",
        "controller": True,
    }
    conditions = []
    if complete:
        conditions.append(
            {"type": "Complete", "status": "True", "lastTransitionTime": ts(finished)}
        )
    if failed is not None:
        conditions.append(
            {
                "type": "Failed",
                "status": "True",
                "reason": failed[0],
                "message": failed[1],
                "lastTransitionTime": ts(finished),
            }
        )
    status: Body = {"active": active, "failed": failed_pods, "succeeded": succeeded}
    if conditions:
        status["conditions"] = conditions
    if complete:
        status["completionTime"] = ts(finished)
    labels = {LABEL_RUN: run_name, LABEL_CONNECTION: conn, LABEL_MANAGED_BY: MANAGED_BY_OPERATOR}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _meta(
            run_name,
            uid=uid or f"uid-job-{run_name}",
            rv=rv,
            created=created,
            labels=labels,
            deleting=deleting,
            owners=[owner],
        ),
        "spec": {},
        "status": status,
    }


def job(run_name: str = "demo-aaaaa", conn: str = "demo", **kwargs: Any) -> JobView:
    return views.job_view(job_body(run_name, conn, **kwargs))


def pod_body(
    run_name: str = "demo-aaaaa",
    conn: str = "demo",
    *,
    name: str | None = None,
    created: datetime | float | str | None = -45,
    phase: str = "Pending",
    waiting: tuple[str, str] | None = None,
    running: bool = False,
    terminated: Mapping[str, Any] | None = None,
    unschedulable: str | None = None,
    reason: str | None = None,
    message: str | None = None,
    job_uid: str | None = None,
) -> Body:
    """A runner pod of the run, owned by its Job (``uid-job-<run>`` unless ``job_uid`` says
    otherwise, "" for none); ``terminated`` is the container's terminated state (``exitCode``,
    ``reason``, ``message``)."""
    state: Body = {}
    if waiting is not None:
        state["waiting"] = {"reason": waiting[0], "message": waiting[1]}
    if running:
        state["running"] = {"startedAt": ts(created)}
    if terminated is not None:
        state["terminated"] = {"finishedAt": ts(-5), **terminated}
    status: Body = {"phase": phase}
    if state:
        status["containerStatuses"] = [{"name": "runner", "state": state}]
    if unschedulable is not None:
        status["conditions"] = [
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": unschedulable,
            }
        ]
    if reason is not None:
        status["reason"] = reason
    if message is not None:
        status["message"] = message
    labels = {LABEL_RUN: run_name, LABEL_CONNECTION: conn, LABEL_MANAGED_BY: MANAGED_BY_OPERATOR}
    pod_name = name or f"{run_name}-p0"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": _meta(
            pod_name,
            uid=None,
            rv=300,
            created=created,
            labels=labels,
            owners=[]
            if job_uid == ""
            else [
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "name": run_name,
                    "uid": job_uid or f"uid-job-{run_name}",
                    "controller": True,
                }
            ],
        ),
        "spec": {},
        "status": status,
    }


def pod(run_name: str = "demo-aaaaa", conn: str = "demo", **kwargs: Any) -> PodView:
    return views.pod_view(pod_body(run_name, conn, **kwargs))


# --------------------------------------------------------------------------- batches


def batch_body(
    name: str = "b1",
    connections: Iterable[str] = ("a", "b"),
    *,
    cancel: bool = False,
    status: Mapping[str, Any] | None = None,
    rv: int | str = 50,
    created: datetime | float | str | None = -120,
    generation: int = 1,
) -> Body:
    return {
        "apiVersion": API_VERSION,
        "kind": "PipelineBatch",
        "metadata": _meta(name, uid=None, rv=rv, created=created, generation=generation),
        "spec": {"connections": list(connections), "cancelRequested": cancel},
        "status": copy.deepcopy(dict(status or {})),
    }


def batch(name: str = "b1", connections: Iterable[str] = ("a", "b"), **kw: Any) -> PipelineBatch:
    view = views.batch_view(batch_body(name, connections, **kw))
    assert view is not None
    return view


# --------------------------------------------------------------------------- deciding


def store_of(*bodies: Body) -> Store:
    """A Store over apiserver-shaped dicts of any kind (sorted by their ``kind``)."""
    by_kind: dict[str, list[Any]] = {k: [] for k in ("conn", "run", "job", "pod", "batch")}
    for body in bodies:
        kind = body["kind"]
        if kind == "PipelineConnection":
            by_kind["conn"].append(views.connection_view(body))
        elif kind == "PipelineRun":
            view = views.run_view(body)
            assert view is not None, body
            by_kind["run"].append(view)
        elif kind == "Job":
            by_kind["job"].append(views.job_view(body))
        elif kind == "Pod":
            by_kind["pod"].append(views.pod_view(body))
        elif kind == "PipelineBatch":
            b = views.batch_view(body)
            assert b is not None, body
            by_kind["batch"].append(b)
        else:  # pragma: no cover - a typo in a test
            raise ValueError(kind)
    return Store.of(
        by_kind["conn"], by_kind["run"], by_kind["job"], by_kind["pod"], by_kind["batch"]
    )


def decide_connection(
    *bodies: Body,
    name: str = "demo",
    namespace: str = NS,
    now: datetime = NOW,
    config: Settings | None = None,
) -> Decision:
    """``gather`` + ``decide`` of connection ``name`` over a store of ``bodies`` at ``now``."""
    state = connection_reconcile.gather(store_of(*bodies), namespace, name)
    return connection_reconcile.decide(state, config or settings(), now)


def decide_batch(
    *bodies: Body,
    name: str = "b1",
    namespace: str = NS,
    now: datetime = NOW,
    config: Settings | None = None,
) -> Decision:
    state = batch_reconcile.gather(store_of(*bodies), namespace, name)
    return batch_reconcile.decide(state, config or settings(), now)


def of_type(decision: Decision, kind: type) -> list[Any]:
    return [a for a in decision.actions if isinstance(a, kind)]


def run_patches(decision: Decision, run_name: str | None = None) -> list[PatchRunStatus]:
    return [
        a for a in of_type(decision, PatchRunStatus) if run_name is None or a.run.name == run_name
    ]


def condition(patch: Mapping[str, Any], type_: str = "Succeeded") -> dict[str, Any]:
    return next(c for c in patch["conditions"] if c["type"] == type_)


def describe(decision: Decision) -> list[tuple[str, ...]]:
    """A readable digest of the actions: (kind, object name[, phase])."""
    out: list[tuple[str, ...]] = []
    for a in decision.actions:
        match a:
            case PatchRunStatus():
                out.append(("PatchRunStatus", a.run.name, a.phase.value))
            case StartRun():
                out.append(("StartRun", a.run.name))
            case DeleteJob():
                out.append(("DeleteJob", a.job.name))
            case PatchConnectionStatus():
                out.append(("PatchConnectionStatus", a.connection.name))
            case CreateRun():
                out.append(("CreateRun", a.manifest["metadata"].get("name", "")))
            case DeleteRun():
                out.append(("DeleteRun", a.run.name))
            case PatchBatchStatus():
                out.append(("PatchBatchStatus", a.batch.metadata.name))
            case DeleteBatch():
                out.append(("DeleteBatch", a.batch.metadata.name))
            case LabelRun():
                out.append(("LabelRun", a.run.name))
            case _:  # an action this kit does not know yet
                out.append((type(a).__name__,))
    return out


# --------------------------------------------------------------------------- the world


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (lists replace, null removes)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


class Conflict(Exception):
    """A write with a stale resourceVersion precondition (the apiserver's 409)."""


class World:
    """Objects as the apiserver holds them, and what the executor would make of a decision.

    ``apply`` performs each action on the dicts (bumping resourceVersions) the way the executor
    and the apiserver would, without any I/O, so a test can decide again on the state after the
    writes. A terminal run patch whose resourceVersion precondition is stale raises Conflict.
    """

    def __init__(self, *bodies: Body, config: Settings | None = None) -> None:
        self.objects: dict[tuple[str, str], Body] = {}
        self.settings = config or settings()
        self._rv = 1000
        self.log: list[tuple[str, ...]] = []
        self.conflicts: list[str] = []
        self.pod_warnings: dict[str, str] = {}  # what ReadPodWarning read, by pod uid
        self.events_of_pods: dict[str, str] = {}  # the newest Warning event of a pod, by name
        for body in bodies:
            self.put(body)

    def put(self, body: Body) -> Body:
        self.objects[(body["kind"], body["metadata"]["name"])] = copy.deepcopy(body)
        return self.objects[(body["kind"], body["metadata"]["name"])]

    def get(self, kind: str, name: str) -> Body | None:
        return self.objects.get((kind, name))

    def names(self, kind: str) -> list[str]:
        return sorted(n for k, n in self.objects if k == kind)

    def run_view(self, name: str) -> PipelineRun:
        body = self.get("PipelineRun", name)
        assert body is not None, name
        view = views.run_view(body)
        assert view is not None
        return view

    def connection_view(self, name: str = "demo") -> ConnectionView:
        body = self.get("PipelineConnection", name)
        assert body is not None, name
        return views.connection_view(body)

    def store(self) -> Store:
        store = store_of(*self.objects.values())
        for uid, warning in self.pod_warnings.items():
            store.remember_pod_warning(uid, warning)
        return store

    def decide(self, name: str = "demo", now: datetime = NOW) -> Decision:
        state = connection_reconcile.gather(self.store(), NS, name)
        return connection_reconcile.decide(state, self.settings, now)

    def decide_batch(self, name: str = "b1", now: datetime = NOW) -> Decision:
        state = batch_reconcile.gather(self.store(), NS, name)
        return batch_reconcile.decide(state, self.settings, now)

    def step(self, name: str = "demo", now: datetime = NOW) -> Decision:
        decision = self.decide(name, now)
        self.apply(decision, now)
        return decision

    def settle(self, name: str = "demo", now: datetime = NOW, rounds: int = 6) -> list[Decision]:
        """Decide and apply until a decision has no actions (at most ``rounds`` times)."""
        out = []
        for _ in range(rounds):
            decision = self.step(name, now)
            out.append(decision)
            if not decision.actions:
                return out
        raise AssertionError(f"no fixed point after {rounds} rounds: {describe(out[-1])}")

    # ------------------------------------------------------------------ the writes

    def _bump(self, body: Body) -> None:
        self._rv += 1
        body["metadata"]["resourceVersion"] = str(self._rv)

    def apply(self, decision: Decision, now: datetime = NOW) -> None:
        """Apply the actions in order; a conflict stops there, as in the executor (the rest
        was decided from the same stale view)."""
        for action in decision.actions:
            try:
                self._one(action, now)
            except Conflict as exc:
                self.conflicts.append(str(exc))
                return

    def _one(self, action: Action, now: datetime) -> None:
        self.log.append(describe(Decision(actions=[action]))[0])
        match action:
            case PatchRunStatus():
                body = self.get("PipelineRun", action.run.name)
                if body is None:
                    return
                rv = action.run.metadata.resource_version
                if action.precondition and body["metadata"]["resourceVersion"] != rv:
                    raise Conflict(action.run.name)
                body["status"] = merge_patch(body.get("status") or {}, action.patch)
                self._bump(body)
                if action.delete_job is not None:
                    self.objects.pop(("Job", action.delete_job.name), None)
            case StartRun():
                manifest = copy.deepcopy(action.manifest)
                meta = manifest["metadata"]
                meta.update(
                    uid=f"uid-job-{meta['name']}",
                    creationTimestamp=ts(now),
                    resourceVersion="0",
                )
                manifest["status"] = {}
                self._bump(manifest)
                self.put(manifest)
                run_body = self.get("PipelineRun", action.run.name)
                assert run_body is not None
                patch = started_patch(action.run, meta["name"], meta["uid"], now, now)
                if patch is not None:
                    run_body["status"] = merge_patch(run_body.get("status") or {}, patch)
                    self._bump(run_body)
            case DeleteJob():
                self.objects.pop(("Job", action.job.name), None)
            case PatchConnectionStatus():
                body = self.get("PipelineConnection", action.connection.name)
                if body is not None:
                    body["status"] = merge_patch(body.get("status") or {}, action.patch)
                    self._bump(body)
            case CreateRun():
                manifest = copy.deepcopy(action.manifest)
                meta = manifest["metadata"]
                name = meta.get("name") or f"{meta['generateName']}gen{self._rv}"
                if self.get("PipelineRun", name) is not None:
                    return  # 409 AlreadyExists
                meta.update(
                    name=name,
                    namespace=meta.get("namespace", NS),
                    uid=f"uid-{name}",
                    creationTimestamp=ts(now),
                    generation=1,
                )
                manifest["status"] = {}
                self._bump(manifest)
                self.put(manifest)
            case DeleteRun():
                self.objects.pop(("PipelineRun", action.run.name), None)
            case PatchBatchStatus():
                body = self.get("PipelineBatch", action.batch.metadata.name)
                if body is not None:
                    body["status"] = merge_patch(body.get("status") or {}, action.patch)
                    self._bump(body)
            case DeleteBatch():
                self.objects.pop(("PipelineBatch", action.batch.metadata.name), None)
            case LabelRun():
                body = self.get("PipelineRun", action.run.name)
                if body is not None:
                    body["metadata"]["labels"] = {**body["metadata"]["labels"], **action.labels}
                    self._bump(body)
            case ReadPodWarning():
                self.pod_warnings[action.pod.uid] = self.events_of_pods.get(action.pod.name, "")
            case _:  # pragma: no cover - a new action: teach the World
                raise NotImplementedError(type(action).__name__)

    # ------------------------------------------------------------------ the cluster's side

    def complete_job(self, run_name: str, *, message: str | None = None) -> None:
        """The Job of ``run_name`` succeeded (its pod ended with ``message``)."""
        body = self.get("Job", run_name)
        assert body is not None, run_name
        conn = body["metadata"]["labels"][LABEL_CONNECTION]
        uid = body["metadata"]["ownerReferences"][0]["uid"]
        self.put(job_body(run_name, conn, run_uid=uid, complete=True, succeeded=1, rv=self._rv))
        self.put(
            pod_body(
                run_name,
                conn,
                phase="Succeeded",
                terminated={"exitCode": 0, "reason": "Completed", "message": message or ""},
            )
        )
