"""The figures of a scale run against the issue's goals, as printable lines (pure)."""

from __future__ import annotations

from collections.abc import Iterator

from tests.scale.harness import Figures
from tests.scale.probe import per_run

DISPATCH_P99_MS = 250
API_P99_MS = 50
API_P99_MS_AT_1K = 20
OPERATOR_RSS_MB = 300
API_RSS_MB = 200
REQUESTS_PER_RUN = 6


def _verdict(ok: bool) -> str:
    return "ok  " if ok else "MISS"


def _api_goal(connections: int) -> float:
    return API_P99_MS_AT_1K if connections <= 1_000 else API_P99_MS


def lines(f: Figures) -> Iterator[str]:
    p = f.params
    yield (
        f"scale run: {p.connections} connections in {p.namespaces} namespaces, {p.shards} "
        f"operator shards, burst {p.burst} run_async in {p.burst_seconds:g} s, runs of "
        f"{p.run_seconds:g} s on {p.kwok_nodes} kwok nodes"
    )
    yield (
        f"  set-up {f.setup_seconds:.0f} s (connections created at {f.create_per_second:.0f}/s), "
        f"operators in sync and API serving all after {f.ready_seconds:.0f} s"
    )
    yield f"  {'goal':40} measured, verdict"
    for phase, lat in f.dispatch.items():
        rate = (
            f"{p.steady_rate:g}/s for {p.steady_seconds:g} s"
            if phase == "steady"
            else f"{p.burst} in {p.burst_seconds:g} s"
        )
        yield _row(
            f"dispatch p99 < {DISPATCH_P99_MS} ms, {phase}", str(lat), lat.p99 < DISPATCH_P99_MS
        )
        yield f"    ({rate}) of which POST run_async answered: {f.run_async.get(phase, '-')}"
    yield f"  burst sent in {f.burst_sent_seconds:g} s; peak runs in flight {f.peak_in_flight}"
    goal = _api_goal(p.connections)
    for phase, reads in f.reads.items():
        yield f"  reads, {phase}:"
        direct = reads.get("direct list")
        for name, lat in reads.items():
            if name == "direct list":
                yield f"    {'direct apiserver list (reference)':38} {lat}"
                continue
            extra = ""
            if direct and name == "GET /connections" and lat.p99 > 0:
                extra = f"  ({direct.p99 / lat.p99:.1f}x the direct list at p99)"
            yield _row(f"  {name} p99 < {goal:g} ms", f"{lat}{extra}", lat.p99 < goal)
    yield _row("0 runs lost", f"{len(f.lost)} of {f.tasks}", not f.lost)
    yield _row("0 runs duplicated", str(len(f.duplicated)), not f.duplicated)
    yield _row(
        "every task answers",
        f"{f.answered} of {f.tasks} terminal ({f.succeeded} succeeded, {f.failed} failed)",
        f.answered == f.tasks,
    )
    yield _row(
        f"≤ {REQUESTS_PER_RUN} apiserver requests per run",
        f"{f.requests_per_run:g} (operator: {_fmt(_writes(f, 'operator'))}; "
        f"api: {_fmt(_writes(f, 'api'))})",
        f.requests_per_run <= REQUESTS_PER_RUN,
    )
    for name, proc in sorted(f.processes.items()):
        if not (name == "api" or name.startswith("operator")):
            yield (
                f"  {name}: peak RSS {proc['peak_rss_mb']:.0f} MB, CPU "
                f"{proc['cpu_seconds_burst']:.1f} s in the burst"
            )
            continue
        limit = API_RSS_MB if name == "api" else OPERATOR_RSS_MB
        yield _row(
            f"{name} RSS < {limit} MB",
            f"peak {proc['peak_rss_mb']:.0f} MB, now {proc['rss_mb']:.0f} MB; CPU "
            f"{proc['cpu_seconds_burst']:.1f} s in the burst, "
            f"{proc['cpu_seconds_total']:.1f} s total",
            proc["peak_rss_mb"] < limit,
        )
    for label, counts in f.etcd.items():
        yield f"  etcd objects {label}: {_fmt(counts)}"
    if f.soak:
        yield f"  soak: {p.soak_connections} connections on '* * * * *', historyLimit 3"
        for point in f.soak:
            minute = point["minute"]
            rest = {k: v for k, v in point.items() if k != "minute"}
            yield f"    minute {minute:>5}: {_fmt(rest)}"
    for name in f.lost[:10]:
        yield f"  lost: {name}"
    for name in f.duplicated[:10]:
        yield f"  duplicated: {name}"


def _writes(f: Figures, side: str) -> dict[str, float]:
    return {k: v for k, v in f.requests.get(side, {}).items() if per_run(k) and v}


def _row(goal: str, measured: str, ok: bool) -> str:
    return f"  {goal:40} {measured}  {_verdict(ok)}"


def _fmt(counts: dict[str, float] | dict[str, int]) -> str:
    return ", ".join(f"{k} {v:g}" for k, v in counts.items())


def met(f: Figures) -> bool:
    """Every goal met."""
    goal = _api_goal(f.params.connections)
    reads_ok = all(
        lat.p99 < goal
        for reads in f.reads.values()
        for name, lat in reads.items()
        if name != "direct list"
    )
    rss_ok = all(
        proc["peak_rss_mb"] < (API_RSS_MB if name == "api" else OPERATOR_RSS_MB)
        for name, proc in f.processes.items()
        if name == "api" or name.startswith("operator")
    )
    return (
        bool(f.dispatch)
        and all(lat.p99 < DISPATCH_P99_MS for lat in f.dispatch.values())
        and reads_ok
        and rss_ok
        and not f.lost
        and not f.duplicated
        and f.answered == f.tasks
        and f.requests_per_run <= REQUESTS_PER_RUN
    )
