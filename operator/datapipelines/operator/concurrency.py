"""Which runs of one connection may start now (Forbid / Queue / Replace). Pure.

The operator calls :func:`plan` with every run of a connection whenever one is created or
ends; the plan is level-based (same input → same plan), so calling it again is harmless.
Request order is ``(creationTimestamp, name)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from datapipelines.resources.models import ConcurrencyPolicy, RunPhase, is_terminal

from .status import REASON_CANCELLED, REASON_CONCURRENCY_FORBIDDEN, REASON_REPLACED


@dataclass(frozen=True)
class RunRef:
    """The facts about one run that concurrency decisions need."""

    name: str
    created: str
    phase: str | None = None
    cancel_requested: bool = False

    @property
    def order(self) -> tuple[str, str]:
        return (self.created, self.name)

    @property
    def running(self) -> bool:
        return self.phase == RunPhase.RUNNING.value

    @property
    def pending(self) -> bool:
        return self.phase in (None, "", RunPhase.QUEUED.value)


@dataclass
class Plan:
    start: list[str] = field(default_factory=list)
    """Pending runs to start now (create their Job)."""
    queue: list[str] = field(default_factory=list)
    """Pending runs that wait (phase Queued)."""
    fail: list[tuple[str, str]] = field(default_factory=list)
    """Pending runs that end Failed without a Job: (name, message)."""
    cancel: list[tuple[str, str]] = field(default_factory=list)
    """Pending runs that end Cancelled without a Job: (name, message)."""
    stop: list[tuple[str, str]] = field(default_factory=list)
    """Running runs to cancel (Replace): (name, message)."""
    active: list[str] = field(default_factory=list)
    """Runs still active after the plan, in request order (the connection's activeRuns)."""


def plan(policy: ConcurrencyPolicy | str, runs: list[RunRef]) -> Plan:
    policy = ConcurrencyPolicy(policy)
    ordered = sorted((r for r in runs if not is_terminal(r.phase)), key=lambda r: r.order)
    result = Plan()
    running = [r for r in ordered if r.running]
    pending: list[RunRef] = []
    for r in ordered:
        if not r.pending:
            continue
        if r.cancel_requested:
            result.cancel.append((r.name, f"{REASON_CANCELLED}: cancelled before it started"))
        else:
            pending.append(r)

    if policy is ConcurrencyPolicy.REPLACE and pending:
        newest = pending[-1]
        why = f"{REASON_REPLACED}: replaced by the newer run {newest.name}"
        result.cancel.extend((r.name, why) for r in pending[:-1])
        result.stop.extend((r.name, why) for r in running if not r.cancel_requested)
        pending = [newest]

    for index, r in enumerate(pending):
        may_start = not running and index == 0
        if may_start:
            result.start.append(r.name)
        elif policy is ConcurrencyPolicy.FORBID:
            blocker = running[0].name if running else pending[0].name
            result.fail.append(
                (
                    r.name,
                    f"{REASON_CONCURRENCY_FORBIDDEN}: run {blocker} of this connection is "
                    "active and the concurrency policy is Forbid",
                )
            )
        else:
            result.queue.append(r.name)

    finished = {n for n, _ in result.fail} | {n for n, _ in result.cancel}
    result.active = [r.name for r in ordered if r.name not in finished]
    return result
