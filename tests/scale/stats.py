"""Percentiles and latency summaries (pure)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from pydantic import BaseModel


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by the nearest-rank method; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


class Latency(BaseModel):
    """A latency sample in milliseconds."""

    n: int
    p50: float
    p99: float
    max: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Latency:
        ms = [s * 1000 for s in seconds]
        return cls(
            n=len(ms),
            p50=round(percentile(ms, 50), 1),
            p99=round(percentile(ms, 99), 1),
            max=round(max(ms), 1) if ms else math.nan,
        )

    def __str__(self) -> str:
        return f"p50 {self.p50:.1f} ms  p99 {self.p99:.1f} ms  max {self.max:.1f} ms  (n={self.n})"
