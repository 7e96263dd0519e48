"""The PipelineBatch state machine: one connection after another. Pure.

Each step looks at the batch's spec, the runs it made (live objects, or what its status
remembers of runs that are gone) and returns what to do next and the new status:

* not cancelled: the first connection without a finished run is ``current``; if it has no
  run yet, create one (deterministic name, so a retried step never makes two);
* cancelled: the current run is cancelled (the connection's reconcile sees the batch's
  request), no more are created; ``cancelled`` once nothing runs;
* every connection's run finished: ``finished``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from datapipelines.resources.batch import BatchRunRef, BatchState, BatchStatus, PipelineBatch
from datapipelines.resources.manifests import batch_run_name
from datapipelines.resources.run import PipelineRun, RunPhase, is_terminal


@dataclass
class BatchStep:
    status: BatchStatus
    create: str | None = None
    """Connection whose run must be created now."""
    stopping: list[str] = field(default_factory=list)
    """Connections whose run is being cancelled with the batch."""


def step(batch: PipelineBatch, runs: list[PipelineRun], now: datetime) -> BatchStep:
    previous = batch.status
    if previous.state is not None and previous.state.done:
        return BatchStep(status=previous.model_copy(deep=True))
    connections = list(batch.spec.connections)
    cancel_requested = batch.spec.cancel_requested
    live = {r.spec.connection_name: r for r in runs}
    remembered = {r.connection: r for r in previous.runs}
    refs: dict[str, BatchRunRef] = {}
    for conn in connections:
        if conn in live:
            run = live[conn]
            refs[conn] = BatchRunRef(connection=conn, run_name=run.name, phase=run.phase)
        elif conn in remembered:
            old = remembered[conn]
            phase = old.phase if is_terminal(old.phase) else RunPhase.FAILED  # vanished early
            refs[conn] = BatchRunRef(connection=conn, run_name=old.run_name, phase=phase)

    create: str | None = None
    stopping: list[str] = []
    current: str | None = None
    for conn in connections:
        ref = refs.get(conn)
        if ref is not None and is_terminal(ref.phase):
            continue
        if cancel_requested:
            if ref is not None:
                current = conn
                stopping.append(conn)
            break
        current = conn
        if ref is None:
            create = conn
            refs[conn] = BatchRunRef(
                connection=conn, run_name=batch_run_name(batch.metadata.name, conn)
            )
        break

    if current is not None:
        state = BatchState.RUNNING
    elif cancel_requested:
        state = BatchState.CANCELLED
    else:
        state = BatchState.FINISHED
    status = BatchStatus(
        state=state,
        current=current,
        completed=[c for c in connections if c in refs and is_terminal(refs[c].phase)],
        runs=[refs[c] for c in connections if c in refs],
        started_at=previous.started_at or now,
        finished_at=previous.finished_at or (now if state.done else None),
        conditions=list(previous.conditions),
        observed_generation=previous.observed_generation,
    )
    return BatchStep(status=status, create=create, stopping=stopping)


def recorded_terminal(batch: PipelineBatch, run_name: str) -> bool:
    """Whether the batch's status already holds the outcome of ``run_name``."""
    return any(r.run_name == run_name and is_terminal(r.phase) for r in batch.status.runs)
