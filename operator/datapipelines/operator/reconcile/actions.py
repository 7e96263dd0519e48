"""What a reconcile asks for: the writes, in order, and when to come back. Pure data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from datapipelines.resources import API_VERSION, CONNECTION_KIND, RUN_KIND
from datapipelines.resources.batch import PipelineBatch
from datapipelines.resources.run import PipelineRun, RunPhase

from ..views import ConnectionView, JobView, PodView


@dataclass(frozen=True)
class EventRef:
    """The object an Event is about."""

    api_version: str
    kind: str
    namespace: str
    name: str
    uid: str


def run_ref(run: PipelineRun) -> EventRef:
    return EventRef(API_VERSION, RUN_KIND, run.namespace, run.name, run.metadata.uid)


def connection_ref(conn: ConnectionView) -> EventRef:
    return EventRef(API_VERSION, CONNECTION_KIND, conn.namespace, conn.name, conn.meta.uid)


@dataclass(frozen=True)
class Event:
    about: EventRef
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass(frozen=True)
class PatchRunStatus:
    """A merge patch of the run's status; ``terminal`` ones carry a resourceVersion precondition
    and, once written, archive the run, count it and post ``events``."""

    run: PipelineRun
    patch: dict[str, Any]
    phase: RunPhase
    precondition: bool = False
    events: tuple[Event, ...] = ()
    delete_job: JobView | None = None
    """Delete this Job once the status is written (a failed start, a replaced run)."""


@dataclass(frozen=True)
class LabelRun:
    """Add the connection/trigger labels a run made by hand lacks (API-made runs have them)."""

    run: PipelineRun
    labels: dict[str, str]


@dataclass(frozen=True)
class StartRun:
    """Create the run's Job, then mark the run Running (or Failed: JobRejected)."""

    run: PipelineRun
    connection: ConnectionView
    manifest: dict[str, Any]
    #: Created first when the connection rotates an OAuth 2.0 token: its runner's own
    #: ServiceAccount and RoleBinding (jobs.oauth2_identity); () otherwise.
    identity: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class DeleteJob:
    run: PipelineRun
    job: JobView
    why: str


@dataclass(frozen=True)
class ReadPodWarning:
    """Read the newest Warning event of a pod that did not start (a missing Secret or key, an
    image that cannot be pulled, no node): the next reconcile names it as the cause."""

    run: PipelineRun
    pod: PodView


@dataclass(frozen=True)
class PatchConnectionStatus:
    connection: ConnectionView
    patch: dict[str, Any]
    events: tuple[Event, ...] = ()


@dataclass(frozen=True)
class CreateRun:
    manifest: dict[str, Any]
    events: tuple[Event, ...] = ()


@dataclass(frozen=True)
class DeleteRun:
    """Delete a finished run (retention); archived first when the archive is on."""

    run: PipelineRun
    why: str


@dataclass(frozen=True)
class PatchBatchStatus:
    batch: PipelineBatch
    patch: dict[str, Any]
    events: tuple[Event, ...] = ()


@dataclass(frozen=True)
class DeleteBatch:
    batch: PipelineBatch
    why: str


Action = (
    LabelRun
    | PatchRunStatus
    | StartRun
    | DeleteJob
    | ReadPodWarning
    | PatchConnectionStatus
    | CreateRun
    | DeleteRun
    | PatchBatchStatus
    | DeleteBatch
)


@dataclass
class Decision:
    actions: list[Action] = field(default_factory=list)
    requeue_after: float | None = None
    """Seconds until this key wants to be reconciled again without an event."""
    wake: set[tuple[str, ...]] = field(default_factory=set)
    """Other keys to reconcile (connections sharing a destination, a batch whose run ended)."""

    def after(self, seconds: float | None) -> None:
        if seconds is None:
            return
        seconds = max(0.5, seconds)
        if self.requeue_after is None or seconds < self.requeue_after:
            self.requeue_after = seconds
