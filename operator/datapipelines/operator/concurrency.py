"""Which runs of one connection may start now (Forbid / Queue / Replace). Pure.

The plan is level-based (same runs → same plan), so calling it again is harmless. Request
order is the run's queue order: creation time, then the etcd revision at which the operator
first saw it (``status.sequence``), then the name — never the random name suffix alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from datapipelines.resources.connection import ConcurrencyPolicy
from datapipelines.resources.run import RunPhase, is_terminal

from .status import REASON_CANCELLED, REASON_CONCURRENCY_FORBIDDEN, REASON_REPLACED


@dataclass(frozen=True)
class RunRef:
    """The facts about one run that concurrency decisions need."""

    name: str
    order: tuple[datetime, int, str]
    phase: RunPhase | None = None
    cancel_requested: bool = False

    @property
    def running(self) -> bool:
        return self.phase is RunPhase.RUNNING

    @property
    def pending(self) -> bool:
        return self.phase in (None, RunPhase.QUEUED)


@dataclass
class Plan:
    start: list[str] = field(default_factory=list)
    """Pending runs to start now (create their Job)."""
    queue: list[tuple[str, str]] = field(default_factory=list)
    """Pending runs that wait (phase Queued): (name, why)."""
    fail: list[tuple[str, str]] = field(default_factory=list)
    """Pending runs that end Failed without a Job: (name, message)."""
    cancel: list[tuple[str, str]] = field(default_factory=list)
    """Pending runs that end Cancelled without a Job: (name, message)."""
    stop: list[tuple[str, str]] = field(default_factory=list)
    """Running runs to cancel (Replace): (name, message)."""
    active: list[str] = field(default_factory=list)
    """Runs still active after the plan, in request order."""


def plan(policy: ConcurrencyPolicy, runs: list[RunRef]) -> Plan:
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
        if not running and index == 0:
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
            blocker = running[0].name if running else pending[0].name
            result.queue.append(
                (
                    r.name,
                    f"waiting for run {blocker} of this connection to end "
                    f"(concurrency policy {policy.value})",
                )
            )

    finished = {n for n, _ in result.fail} | {n for n, _ in result.cancel}
    result.active = [r.name for r in ordered if r.name not in finished]
    return result
