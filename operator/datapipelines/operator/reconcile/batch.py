"""Reconcile one batch key: step the state machine, create the next run, write the status,
and delete the batch once its time is up. Pure (``decide``) over the store (``gather``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from datapipelines.resources import API_VERSION, BATCH_KIND
from datapipelines.resources.batch import CONDITION_COMPLETE, BatchState, PipelineBatch
from datapipelines.resources.manifests import run_manifest
from datapipelines.resources.meta import ConditionStatus, conditions_json, with_condition
from datapipelines.resources.run import PipelineRun, Trigger

from ..batchstate import step
from ..config import Settings
from ..store import Store
from .actions import CreateRun, Decision, DeleteBatch, Event, EventRef, PatchBatchStatus


@dataclass
class BatchInputs:
    namespace: str
    name: str
    batch: PipelineBatch | None
    runs: list[PipelineRun]


def gather(store: Store, namespace: str, name: str) -> BatchInputs:
    return BatchInputs(
        namespace=namespace,
        name=name,
        batch=store.batch(namespace, name),
        runs=store.runs_of_batch(namespace, name),
    )


_COND_STATUS = {
    BatchState.QUEUED: ConditionStatus.UNKNOWN,
    BatchState.RUNNING: ConditionStatus.UNKNOWN,
    BatchState.FINISHED: ConditionStatus.TRUE,
    BatchState.CANCELLED: ConditionStatus.FALSE,
}


def decide(state: BatchInputs, settings: Settings, now: datetime) -> Decision:
    out = Decision()
    batch = state.batch
    if batch is None:
        return out
    result = step(batch, state.runs, now)
    ns = state.namespace
    ref = EventRef(API_VERSION, BATCH_KIND, ns, batch.metadata.name, batch.metadata.uid)
    normal = settings.events == "all"
    if result.create:
        run_name = next(r.run_name for r in result.status.runs if r.connection == result.create)
        manifest = run_manifest(
            result.create, Trigger.BATCH, name=run_name, namespace=ns, batch=batch.metadata.name
        )
        created = (
            (Event(ref, "Normal", "RunCreated", f"{result.create}: run {run_name}"),)
            if normal
            else ()
        )
        out.actions.append(CreateRun(manifest, created))
    for conn in result.stopping:
        out.wake.add(("conn", ns, conn))
    recorded_before = {
        r.run_name for r in batch.status.runs if r.phase is not None and r.phase.terminal
    }
    for entry in result.status.runs:
        if (
            entry.phase is not None
            and entry.phase.terminal
            and entry.run_name not in recorded_before
        ):
            out.wake.add(("conn", ns, entry.connection))  # its retention may go on now
    status = result.status
    state_ = status.state or BatchState.QUEUED
    message = {
        BatchState.RUNNING: f"running {status.current}",
        BatchState.FINISHED: f"all {len(status.completed)} connection(s) ran",
        BatchState.CANCELLED: f"cancelled after {len(status.completed)} connection(s)",
    }.get(state_, "")
    status.conditions = with_condition(
        batch.status.conditions,
        type_=CONDITION_COMPLETE,
        status=_COND_STATUS[state_],
        reason=state_.value.capitalize(),
        message=message,
        now=now,
        observed_generation=batch.metadata.generation,
    )
    status.observed_generation = batch.metadata.generation
    desired = status.model_dump(by_alias=True, mode="json", exclude={"conditions"})
    current = batch.status.model_dump(by_alias=True, mode="json", exclude={"conditions"})
    old_conds = [(c.type, c.status, c.reason, c.message) for c in batch.status.conditions]
    new_conds = [(c.type, c.status, c.reason, c.message) for c in status.conditions]
    if desired != current or old_conds != new_conds:
        patch = {**desired, "conditions": conditions_json(status.conditions)}
        events: tuple[Event, ...] = ()
        changed = batch.status.state != state_
        worth = normal and state_ is not BatchState.QUEUED  # events "warnings": none of these
        if changed and worth:
            reason = {"running": "Started"}.get(state_.value, state_.value.capitalize())
            events = (Event(ref, "Normal", reason, message),)
        out.actions.append(PatchBatchStatus(batch, patch, events))
    if state_.done and status.finished_at is not None:
        expires = status.finished_at + timedelta(seconds=settings.batch_ttl_seconds)
        if expires <= now:
            out.actions.append(
                DeleteBatch(batch, f"finished more than {settings.batch_ttl_seconds} s ago")
            )
        else:
            out.after((expires - now).total_seconds())
    return out
