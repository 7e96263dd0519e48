"""The PipelineBatch state machine: one connection after another. Pure.

Each step looks at the batch's spec, the runs it made (live objects, or what its status
remembers of runs that are gone) and returns what to do next and the new status:

* not cancelled: the first connection without a finished run is ``current``; if it has no
  run yet, create one (deterministic name, so a retried step never makes two);
* cancelled: cancel the current run (if any), create no more; ``cancelled`` once nothing runs;
* every connection's run finished: ``finished``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from datapipelines.resources.models import BatchState, RunPhase, is_terminal

from .jobs import short_name


def batch_run_name(batch: str, connection: str) -> str:
    """Name of the run a batch makes for one connection (≤ 63 characters, stable)."""
    return short_name(f"{batch}-{connection}")


@dataclass(frozen=True)
class BatchRun:
    connection: str
    name: str
    phase: str | None = None
    cancel_requested: bool = False


@dataclass
class BatchStep:
    status: dict[str, Any]
    create: str | None = None
    """Connection whose run must be created now."""
    cancel: list[str] = field(default_factory=list)
    """Run names to mark cancelRequested."""

    @property
    def done(self) -> bool:
        return self.status["state"] in (BatchState.FINISHED.value, BatchState.CANCELLED.value)


def step(
    *,
    name: str,
    connections: list[str],
    cancel_requested: bool,
    live: dict[str, BatchRun],
    previous: dict[str, Any] | None,
    now: str,
) -> BatchStep:
    previous = previous or {}
    if previous.get("state") in (BatchState.FINISHED.value, BatchState.CANCELLED.value):
        return BatchStep(status=dict(previous))
    remembered = {r["connection"]: r for r in previous.get("runs") or []}
    runs: dict[str, BatchRun] = {}
    for conn in connections:
        if conn in live:
            runs[conn] = live[conn]
        elif conn in remembered:
            old = remembered[conn]
            phase = old.get("phase")
            if not is_terminal(phase):
                phase = RunPhase.FAILED.value  # the run object vanished before it finished
            runs[conn] = BatchRun(conn, old["runName"], phase)

    create: str | None = None
    cancel: list[str] = []
    current: str | None = None
    for conn in connections:
        run = runs.get(conn)
        if run is not None and is_terminal(run.phase):
            continue
        if cancel_requested:
            if run is not None:
                current = conn
                if not run.cancel_requested:
                    cancel.append(run.name)
            break
        current = conn
        if run is None:
            create = conn
            runs[conn] = BatchRun(conn, batch_run_name(name, conn), None)
        break

    completed = [c for c in connections if c in runs and is_terminal(runs[c].phase)]
    if current is not None:
        state = BatchState.RUNNING
    elif cancel_requested:
        state = BatchState.CANCELLED
    else:
        state = BatchState.FINISHED

    status: dict[str, Any] = {
        "state": state.value,
        "current": current,
        "completed": completed,
        "runs": [
            {"connection": c, "runName": runs[c].name, "phase": runs[c].phase}
            for c in connections
            if c in runs
        ],
        "startedAt": previous.get("startedAt") or now,
        "finishedAt": previous.get("finishedAt")
        or (now if state in (BatchState.FINISHED, BatchState.CANCELLED) else None),
    }
    return BatchStep(status=status, create=create, cancel=cancel)
