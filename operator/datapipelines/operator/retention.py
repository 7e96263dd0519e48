"""Which finished runs of a connection to delete (keep ``historyLimit``). Pure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class FinishedRef:
    name: str
    finished: datetime
    """completionTime, else creationTimestamp."""
    sequence: int = 0
    """Queue order, for runs that ended in the same second."""
    held: bool = False
    """Someone still needs the object (its batch has not recorded its outcome yet)."""


def to_delete(runs: list[FinishedRef], history_limit: int) -> list[str]:
    """Finished runs beyond the newest ``history_limit`` that nobody holds (oldest first)."""
    newest_first = sorted(runs, key=lambda r: (r.finished, r.sequence, r.name), reverse=True)
    beyond = newest_first[max(0, history_limit) :]
    return [r.name for r in reversed(beyond) if not r.held]
