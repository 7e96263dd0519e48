"""How often the runner retries a transient destination failure itself before it gives up.

A destination that restarts, a dropped connection, a DuckDB file locked for a moment: the
attempt is rolled back and started again after a pause (sync.py), so a blip of a few seconds
does not fail the run. Failures of the source, the config or the schema contract are never
retried here (dlt retries HTTP requests itself).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

#: pauses before the 2nd, 3rd and 4th attempt (17 s in all)
DEFAULT_DELAYS = (2.0, 5.0, 10.0)
#: comma-separated seconds; empty = no retry (tests use short pauses)
DELAYS_ENV = "DATAPIPELINES_RETRY_DELAYS"


@dataclass(frozen=True)
class RetryPolicy:
    delays: tuple[float, ...] = DEFAULT_DELAYS

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RetryPolicy:
        env = os.environ if environ is None else environ
        raw = env.get(DELAYS_ENV)
        if raw is None:
            return cls()
        try:
            delays = tuple(float(part) for part in raw.split(",") if part.strip())
        except ValueError:
            return cls()
        return cls(tuple(max(0.0, d) for d in delays))

    @property
    def attempts(self) -> int:
        return len(self.delays) + 1

    def delay_before(self, attempt: int) -> float | None:
        """Pause before attempt number `attempt` (2, 3, …), None when there is none left."""
        index = attempt - 2
        return self.delays[index] if 0 <= index < len(self.delays) else None
