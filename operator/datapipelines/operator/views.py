"""What the operator keeps in memory of each object: typed projections of the watched bodies.

kopf's indexes (``registration.py``) hold these, so a reconcile reads runs, Jobs and pods of a
connection without calling the apiserver. Projections keep only what decisions need: run
reports (up to 16 KiB each) are dropped, pods keep their runner container's state. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from datapipelines.resources import LABEL_BATCH, LABEL_CONNECTION, LABEL_RUN
from datapipelines.resources.batch import PipelineBatch
from datapipelines.resources.connection import (
    ConnectionSpec,
    ConnectionStatus,
    DestinationType,
)
from datapipelines.resources.meta import ObjectMeta, validation_problems
from datapipelines.resources.podcontract import RUNNER_CONTAINER
from datapipelines.resources.run import PipelineRun
from datapipelines.resources.times import parse_time

Body = Mapping[str, Any]


def _meta(body: Body) -> ObjectMeta:
    return ObjectMeta.model_validate(body.get("metadata") or {})


# --------------------------------------------------------------------------- connections


@dataclass(frozen=True)
class ConnectionView:
    """A connection: its metadata, its spec if it parses (else the problems), its status."""

    meta: ObjectMeta
    spec: ConnectionSpec | None
    spec_problems: tuple[tuple[str, str], ...]
    status: ConnectionStatus
    raw_spec: Mapping[str, Any] = field(compare=False, repr=False, default_factory=dict)

    @property
    def namespace(self) -> str:
        return self.meta.namespace

    @property
    def name(self) -> str:
        return self.meta.name

    @property
    def destination(self) -> DestinationRef | None:
        return destination_of(self.namespace, self.spec) if self.spec else None


def connection_view(body: Body) -> ConnectionView:
    meta = _meta(body)
    raw = dict(body.get("spec") or {})
    try:
        spec: ConnectionSpec | None = ConnectionSpec.model_validate(raw)
        problems: tuple[tuple[str, str], ...] = ()
    except ValidationError as exc:
        spec, problems = None, tuple(validation_problems(exc))
    try:
        status = ConnectionStatus.model_validate(body.get("status") or {})
    except ValidationError:
        status = ConnectionStatus()
    return ConnectionView(meta=meta, spec=spec, spec_problems=problems, status=status, raw_spec=raw)


@dataclass(frozen=True)
class DestinationRef:
    """What two connections share when they write the same place (``key``), and its name for
    people (``label``): one DuckDB file (volumes are namespaced, so the namespace is part of
    it) or one PostgreSQL schema."""

    key: str
    label: str


def destination_of(namespace: str, spec: ConnectionSpec) -> DestinationRef | None:
    """None for a DuckDB file on a pod's scratch space: each pod has its own, nothing shared."""
    dest = spec.destination
    if dest.type is DestinationType.POSTGRES and dest.postgres is not None:
        pg = dest.postgres
        where = f"{pg.host}:{pg.port}/{pg.database}"
        return DestinationRef(
            key=f"postgres://{where}/{spec.schema_name}",
            label=f"PostgreSQL schema {spec.schema_name} on {where}",
        )
    duck = dest.duck
    if duck.volume is not None:
        volume = duck.volume.model_dump_json(by_alias=True, exclude_none=True)
    elif duck.on_warehouse:
        volume = "warehouse"
    else:
        return None
    return DestinationRef(
        key=f"duckdb://{namespace}/{volume}{duck.file}", label=f"DuckDB file {duck.file}"
    )


# --------------------------------------------------------------------------- runs


#: Fields of a run's result that readers fetch on demand instead of holding in memory.
HEAVY_RESULT_FIELDS = ("report", "loadedSchema", "log")


def run_view(body: Body) -> PipelineRun | None:
    """The run without its report texts and loaded schema (the operator never needs them: they
    stay out of its memory); None if unreadable."""
    data = dict(body)
    status = dict(data.get("status") or {})
    for key in ("runnerResult", "result"):
        if isinstance(status.get(key), dict):
            status[key] = {k: v for k, v in status[key].items() if k not in HEAVY_RESULT_FIELDS}
    data["status"] = status
    try:
        return PipelineRun.model_validate(data)
    except ValidationError as error:
        if "runnerResult" not in status:
            return None
        # The runner writes status.runnerResult; a bad one must fail that run with a reason,
        # not make the run unreadable (it would hold its connection for ever).
        problem = error.errors()[0]
        status.pop("runnerResult")
    try:
        run = PipelineRun.model_validate(data)
    except ValidationError:
        return None
    where = ".".join(str(p) for p in problem.get("loc", ()))
    run.runner_report_problem = (
        f"status.runnerResult is not a runner report ({where}: "
        + str(problem.get("msg", "invalid"))[:200]
        + ")"
    )
    return run


def batch_view(body: Body) -> PipelineBatch | None:
    try:
        return PipelineBatch.model_validate(body)
    except ValidationError:
        return None


# --------------------------------------------------------------------------- Jobs and pods


@dataclass(frozen=True)
class JobCondition:
    type: str
    status: str
    reason: str = ""
    message: str = ""
    last_transition_time: datetime | None = None


@dataclass(frozen=True)
class JobView:
    name: str
    namespace: str
    uid: str
    resource_version: str
    owner_uids: tuple[str, ...]
    run: str
    connection: str
    created: datetime | None
    deleting: bool
    conditions: tuple[JobCondition, ...]
    active: int = 0
    failed: int = 0
    succeeded: int = 0
    terminating: int = 0
    completion_time: datetime | None = None

    def condition(self, type_: str) -> JobCondition | None:
        return next((c for c in self.conditions if c.type == type_ and c.status == "True"), None)

    @property
    def finished(self) -> bool:
        return self.condition("Complete") is not None or self.condition("Failed") is not None

    def owned_by(self, uid: str) -> bool:
        return uid in self.owner_uids


def job_view(body: Body) -> JobView:
    meta = body.get("metadata") or {}
    status = body.get("status") or {}
    labels = meta.get("labels") or {}
    return JobView(
        name=meta.get("name", ""),
        namespace=meta.get("namespace", ""),
        uid=meta.get("uid", ""),
        resource_version=meta.get("resourceVersion", ""),
        owner_uids=tuple(r.get("uid", "") for r in meta.get("ownerReferences") or []),
        run=labels.get(LABEL_RUN, ""),
        connection=labels.get(LABEL_CONNECTION, ""),
        created=parse_time(meta.get("creationTimestamp")),
        deleting=bool(meta.get("deletionTimestamp")),
        conditions=tuple(
            JobCondition(
                type=c.get("type", ""),
                status=c.get("status", ""),
                reason=c.get("reason") or "",
                message=c.get("message") or "",
                last_transition_time=parse_time(c.get("lastTransitionTime")),
            )
            for c in status.get("conditions") or []
        ),
        active=int(status.get("active") or 0),
        failed=int(status.get("failed") or 0),
        succeeded=int(status.get("succeeded") or 0),
        terminating=int(status.get("terminating") or 0),
        completion_time=parse_time(status.get("completionTime")),
    )


@dataclass(frozen=True)
class ContainerState:
    """The runner container's state: waiting, running or terminated (and the last one)."""

    waiting_reason: str = ""
    waiting_message: str = ""
    running: bool = False
    terminated: bool = False
    exit_code: int | None = None
    reason: str = ""
    message: str = ""
    finished_at: datetime | None = None


@dataclass(frozen=True)
class PodView:
    name: str
    namespace: str
    uid: str
    run: str
    connection: str
    created: datetime | None
    phase: str
    reason: str
    message: str
    unschedulable: str
    container: ContainerState
    deleting: bool = False
    owner_uids: tuple[str, ...] = ()
    """UIDs of the pod's controllers: a runner pod counts for a run only when its Job controls
    it (the Job controller releases or counts any pod that claims so)."""

    def owned_by(self, uids: set[str]) -> bool:
        return any(uid in uids for uid in self.owner_uids)


def _container(status: Mapping[str, Any]) -> ContainerState:
    statuses = status.get("containerStatuses") or []
    cs = next((c for c in statuses if c.get("name") == RUNNER_CONTAINER), None)
    if cs is None:
        cs = statuses[0] if statuses else {}
    state = cs.get("state") or {}
    term = state.get("terminated") or (cs.get("lastState") or {}).get("terminated")
    waiting = state.get("waiting") or {}
    if term:
        return ContainerState(
            terminated=True,
            exit_code=term.get("exitCode"),
            reason=term.get("reason") or "",
            message=term.get("message") or "",
            finished_at=parse_time(term.get("finishedAt")),
            waiting_reason=waiting.get("reason") or "",
            waiting_message=waiting.get("message") or "",
        )
    return ContainerState(
        waiting_reason=waiting.get("reason") or "",
        waiting_message=waiting.get("message") or "",
        running="running" in state,
    )


def pod_view(body: Body) -> PodView:
    meta = body.get("metadata") or {}
    status = body.get("status") or {}
    labels = meta.get("labels") or {}
    unschedulable = ""
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
            unschedulable = f"{cond.get('reason') or 'Unschedulable'}: {cond.get('message') or ''}"
    return PodView(
        name=meta.get("name", ""),
        namespace=meta.get("namespace", ""),
        uid=meta.get("uid", ""),
        run=labels.get(LABEL_RUN, ""),
        connection=labels.get(LABEL_CONNECTION, ""),
        created=parse_time(meta.get("creationTimestamp")),
        phase=status.get("phase") or "Pending",
        reason=status.get("reason") or "",
        message=status.get("message") or "",
        unschedulable=unschedulable.rstrip(": "),
        container=_container(status),
        deleting=bool(meta.get("deletionTimestamp")),
        owner_uids=tuple(
            str(ref.get("uid") or "")
            for ref in meta.get("ownerReferences") or []
            if ref and ref.get("controller")  # the Job controller releases a forged one
        ),
    )


def batch_label(meta: ObjectMeta) -> str | None:
    return meta.labels.get(LABEL_BATCH) or None
