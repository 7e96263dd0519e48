"""Who-may-do-what benchmark: the API's request latency with an unscoped key (the reference),
scoped keys and a Kubernetes token (reviews cached), over 10,000 connections in 20 namespaces.

In process (httpx over ASGI, the in-memory store the unit tests use): the figure is what the
access check adds to a request, not the network. Goal (issue 28): no figure more than 10 %
above the reference. Run: `make bench-access` (BENCH_ARGS=--connections 1000 --rounds 50).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository: tests.unit.api

from datapipelines.api.deps import Gate
from datapipelines.api.kubeauth import KubeAuth
from datapipelines.api.main import create_app
from datapipelines.api.settings import Settings
from tests.unit.api.fakekube import FakeStore
from tests.unit.api.test_api_access import FakeReviews

GOAL = 1.10
REFERENCE = "unscoped key"
KEY = "bench-unscoped-key-0123456789"


def build_store(connections: int, namespaces: int) -> FakeStore:
    names = [f"team-{i:02d}" for i in range(namespaces)]
    store = FakeStore(*names)
    for i in range(connections):
        ns = names[i % namespaces]
        store.add_connection(f"conn-{i:05d}", namespace=ns)
        if i % 10 == 0:
            store.add_run(f"conn-{i:05d}-r", f"conn-{i:05d}", "Running", namespace=ns)
    return store


def callers(namespaces: int) -> dict[str, dict[str, str]]:
    return {
        REFERENCE: {"X-API-Key": KEY},
        "scoped key, every namespace listed": {"X-API-Key": "bench-all-listed-0123456789"},
        "scoped key, read+run": {"X-API-Key": "bench-read-run-0123456789"},
        "Kubernetes token (reviews cached)": {"Authorization": "Bearer token-viewer"},
    }


def keys_file(path: Path, namespaces: int) -> Path:
    names = [f"team-{i:02d}" for i in range(namespaces)]
    path.write_text(
        json.dumps(
            {
                "keys": [
                    {"id": "all-listed", "key": "bench-all-listed-0123456789", "namespaces": names},
                    {
                        "id": "read-run",
                        "key": "bench-read-run-0123456789",
                        "namespaces": names,
                        "verbs": ["read", "run"],
                    },
                ]
            }
        )
    )
    return path


async def measure(
    client: httpx.AsyncClient, by_caller: dict[str, dict[str, str]], path: str, rounds: int
) -> dict[str, float]:
    """Median seconds of `rounds` GETs of `path` per caller, the callers taking turns within
    each round in a new order (drift of the machine and the collector weigh on all alike),
    after 3 warm-ups each."""
    times: dict[str, list[float]] = {who: [] for who in by_caller}
    order = list(by_caller.items())
    for warm in range(3 + rounds):
        random.shuffle(order)
        for who, headers in order:
            started = time.perf_counter()
            resp = await client.get(path, headers=headers)
            elapsed = time.perf_counter() - started
            assert resp.status_code == 200, (path, who, resp.status_code, resp.text[:200])
            if warm >= 3:
                times[who].append(elapsed)
    return {who: statistics.median(t) for who, t in times.items()}


async def main_async(args: argparse.Namespace) -> int:
    store = build_store(args.connections, args.namespaces)
    reviews = FakeReviews()
    for i in range(args.namespaces):
        ns = f"team-{i:02d}"
        reviews.rules.add(("system:serviceaccount:team-a:viewer", "get", "pipelineconnections", ns))
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            api_key=KEY,  # type: ignore[arg-type]
            api_keys_file=keys_file(Path(tmp) / "keys.json", args.namespaces),
            namespace=",".join(store.namespaces),
        )
        app = create_app(settings, kube=store, archive=None, kube_auth=KubeAuth(reviews.post, 3600))
        paths = {
            "GET /connections": "/connections",
            "GET /connections/{name}/status": "/connections/conn-00042/status",
            "GET /task_status/{id}": "/task_status/conn-00040-r",
            "GET /history?limit=100": "/history?limit=100",
        }
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            figures: dict[str, dict[str, float]] = {}
            for label, path in paths.items():
                rounds = max(5, args.rounds // 10) if path == "/connections" else args.rounds
                figures[label] = await measure(client, callers(args.namespaces), path, rounds)
    assert isinstance(app.state.gate, Gate)
    worst = 0.0
    print(
        f"access bench: {args.connections:,} connections in {args.namespaces} namespaces, "
        f"median of {args.rounds} requests (list: {max(5, args.rounds // 10)}), in process"
    )
    print(f"goal: every figure ≤ {GOAL:.2f}x the {REFERENCE}'s\n")
    print(f"{'request':32} {'caller':38} {'median':>10} {'vs ref':>8}")
    for label, by_caller in figures.items():
        ref = by_caller[REFERENCE]
        for who, seconds in by_caller.items():
            ratio = seconds / ref
            if who != REFERENCE:
                worst = max(worst, ratio)
            print(f"{label:32} {who:38} {seconds * 1000:8.2f}ms {ratio:7.2f}x")
    print(f"\nreviews posted to the apiserver: {len(reviews.posts)} (cached afterwards)")
    verdict = "meets" if worst <= GOAL else "MISSES"
    print(f"worst ratio {worst:.2f}x — {verdict} the goal (≤ {GOAL:.2f}x)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--namespaces", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=200)
    args: Any = parser.parse_args(argv)
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
