"""What the harness reads of the processes it runs: RSS and CPU from /proc, request counters
from Prometheus text."""

from __future__ import annotations

import os
import re
from pathlib import Path

from pydantic import BaseModel

_TICKS = os.sysconf("SC_CLK_TCK")
_SAMPLE = re.compile(
    r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})?\s+(?P<value>\S+)"
)
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


class ProcSample(BaseModel):
    """One look at a process: resident memory now and at its peak (MB), CPU seconds so far."""

    rss_mb: float
    peak_rss_mb: float
    cpu_seconds: float


def sample(pid: int) -> ProcSample | None:
    """The process's figures, or None once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)

    def mb(key: str) -> float:
        return int(fields.get(key, "0 kB").split()[0]) / 1024

    # fields after the command (which may hold spaces) start at index 3: utime is 14, stime 15
    after = stat.rsplit(")", 1)[1].split()
    cpu = (int(after[11]) + int(after[12])) / _TICKS
    return ProcSample(
        rss_mb=round(mb("VmRSS"), 1), peak_rss_mb=round(mb("VmHWM"), 1), cpu_seconds=cpu
    )


def metric_samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """Every sample of metric `name` in Prometheus text: (labels, value)."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if m and m.group("name") == name:
            labels = dict(_LABEL.findall(m.group("labels") or ""))
            out.append((labels, float(m.group("value"))))
    return out


def request_counts(text: str, name: str) -> dict[str, float]:
    """A request counter summed by its `verb` and `resource` labels: "create jobs" -> n."""
    totals: dict[str, float] = {}
    for labels, value in metric_samples(text, name):
        key = f"{labels.get('verb', '?')} {labels.get('resource', '?')}"
        totals[key] = totals.get(key, 0.0) + value
    return totals


#: what the harness does not count as a run's requests: watches, lists (start-up and the
#: shard's namespace poll) and the leader's Lease renewals, which do not grow with runs
NOT_PER_RUN = ("watch", "list")


def per_run(key: str) -> bool:
    verb, _, resource = key.partition(" ")
    return verb not in NOT_PER_RUN and resource != "leases"
