"""`python -m tests.scale` — the scale harness (make bench-scale); prints figures against the
goals and writes them as JSON."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from tests.scale.harness import ScaleParams, run
from tests.scale.report import lines, met


def main(argv: list[str] | None = None) -> int:
    d = ScaleParams()
    ap = argparse.ArgumentParser(prog="python -m tests.scale", description=__doc__)
    ap.add_argument("--connections", type=int, default=d.connections)
    ap.add_argument("--namespaces", type=int, default=d.namespaces)
    ap.add_argument("--shards", type=int, default=d.shards)
    ap.add_argument("--burst", type=int, default=d.burst, help="run_async calls in the burst")
    ap.add_argument("--burst-seconds", type=float, default=d.burst_seconds)
    ap.add_argument("--run-seconds", type=float, default=d.run_seconds, help="simulated run length")
    ap.add_argument("--samples", type=int, default=d.samples, help="API reads per phase")
    ap.add_argument(
        "--steady-rate", type=float, default=d.steady_rate, help="run_async/s (0: none)"
    )
    ap.add_argument("--steady-seconds", type=float, default=d.steady_seconds)
    ap.add_argument("--soak-minutes", type=float, default=d.soak_minutes)
    ap.add_argument("--soak-connections", type=int, default=d.soak_connections)
    ap.add_argument("--kwok-nodes", type=int, default=d.kwok_nodes)
    ap.add_argument("--tag", default="b", help="name prefix of the fleet (a-z0-9)")
    ap.add_argument("--keep", action="store_true", help="leave the fleet in the cluster")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    params = ScaleParams(**{k: v for k, v in vars(args).items() if k in ScaleParams.model_fields})
    figures = asyncio.run(run(params))
    for line in lines(figures):
        print(line)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(figures.model_dump_json(indent=2))
    # a benchmark: it reports misses, it does not fail on them
    print("all goals met" if met(figures) else "some goals missed (see MISS above)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
