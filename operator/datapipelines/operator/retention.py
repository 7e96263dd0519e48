"""Which finished runs of a connection to delete (keep ``historyLimit``). Pure."""

from __future__ import annotations

from dataclasses import dataclass

from datapipelines.resources.models import is_terminal


@dataclass(frozen=True)
class FinishedRef:
    name: str
    phase: str | None
    finished: str
    """completionTime, else creationTimestamp (RFC 3339, sortable)."""


def to_delete(runs: list[FinishedRef], history_limit: int) -> list[str]:
    """Finished runs beyond the newest ``history_limit``; an active run is never returned."""
    finished = sorted(
        (r for r in runs if is_terminal(r.phase)),
        key=lambda r: (r.finished, r.name),
        reverse=True,
    )
    return [r.name for r in finished[max(0, history_limit) :]]
