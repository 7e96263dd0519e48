"""SaaS preset benchmark (`make bench-saas`): a `type: trello` connection against the generic
`rest_api` connection a user would write by hand for the same endpoints, on the same data.

A benchmark, not a test: it prints figures against issue 21's goal (the preset's throughput at
least 0.8x the generic source's: a preset must not be slower by design) and refuses to print
them only when a contender did not load every card (counted IN the destination).

The Trello mock (datapipelines.mocks.trello) serves N cards (default 100,000, spread over
N/50 boards) in its own thread; each contender runs the real runner as a whole process
(interpreter start included) into a fresh DuckDB file, `--repeat` times, the order alternating:

  preset   type: trello, streams [cards]      (boards, then /boards/{id}/cards/all per board)
  generic  type: rest_api with the same two resources written out by hand

usage: python runner-image/bench/saas_bench.py [--records 100000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO / "mocks"), str(REPO / "runner-image"), str(REPO / "resources")]

from bench import Run, expect, print_steps, run_runner, spread, verdict  # noqa: E402

from datapipelines.mocks import serve  # noqa: E402
from datapipelines.mocks.trello import KEY, TOKEN, TrelloApi  # noqa: E402

GOAL_RATIO = 0.8


def preset(url: str) -> dict[str, Any]:
    return {
        "type": "trello",
        "source": {
            "trello": {
                "baseUrl": f"{url}/1",
                "apiKeySecretRef": {"name": "trello", "key": "key"},
                "tokenSecretRef": {"name": "trello", "key": "token"},
                "streams": ["cards"],
            }
        },
    }


def generic(url: str) -> dict[str, Any]:
    """What a user writes for the same data without the preset (key and token as query
    parameters: rest_api's api_key auth carries one secret, so they are spelled out)."""
    merge = {"primary_key": "id", "write_disposition": "merge"}
    board_id = {"type": "resolve", "resource": "boards", "field": "id"}
    return {
        "type": "rest_api",
        "source": {
            "restApi": {
                "baseUrl": f"{url}/1/",
                "resourceDefaults": {
                    "endpoint": {"params": {"key": KEY, "token": TOKEN}, "paginator": "single_page"}
                },
                "resources": [
                    {
                        "name": "boards",
                        "endpoint": {
                            "path": "members/me/boards",
                            "params": {"fields": "all", "filter": "all"},
                        },
                        **merge,
                    },
                    {
                        "name": "cards",
                        "endpoint": {
                            "path": "boards/{board_id}/cards/all",
                            "params": {
                                "fields": "all",
                                "board_id": board_id,
                            },
                        },
                        "include_from_parent": ["id"],
                        **merge,
                    },
                ],
            }
        },
    }


class Contest:
    def __init__(self, work: Path) -> None:
        self.work = work
        self.n_runs = 0
        for key, value in (("key", KEY), ("token", TOKEN)):
            (work / "secrets" / "trello").mkdir(parents=True, exist_ok=True)
            (work / "secrets" / "trello" / key).write_text(value)

    def run(self, source: dict[str, Any], cards: int) -> Run:
        """The runner as a pod runs it: spec in the environment, a fresh data dir and DuckDB."""
        import duckdb

        self.n_runs += 1
        name = f"saas-{self.n_runs}"
        db = self.work / f"{name}.duckdb"
        connection = {
            **source,
            "schemaName": "bench",
            "destination": {"type": "duckdb", "duckdb": {"path": str(db)}},
        }
        run = run_runner(self.work, name, connection)
        with duckdb.connect(str(db), read_only=True) as conn:
            got = conn.execute("SELECT count(*) FROM bench.cards").fetchone()
        expect(got[0] if got else 0, cards, f"{source['type']} cards in DuckDB")
        db.unlink()
        return run


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dp-saas-bench-"))
    runs: dict[str, list[Run]] = {"preset": [], "generic": []}
    try:
        api = TrelloApi(rows=args.records)
        cards, boards = len(api.cards), len(api.boards)
        contest = Contest(work)
        with serve(api) as served:
            specs = {"preset": preset(served.url), "generic": generic(served.url)}
            for i in range(args.repeat):
                order = ["preset", "generic"] if i % 2 == 0 else ["generic", "preset"]
                for name in order:
                    runs[name].append(contest.run(specs[name], cards))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    med = {k: statistics.median(r.seconds for r in v) for k, v in runs.items()}
    print(
        f"\nSaaS preset vs generic rest_api: {cards:,} Trello cards on {boards:,} boards, "
        f"runner -> DuckDB, {args.repeat} runs each (min / median / max s)"
    )
    for name, rs in runs.items():
        secs = [r.seconds for r in rs]
        print(f"  {name:<8} {spread(secs)}  {cards / med[name]:9,.0f} cards/s")
    ratio = med["generic"] / med["preset"]  # throughput of the preset relative to the generic
    print(
        f"  preset throughput / generic: {ratio:.2f}x (goal >= {GOAL_RATIO}x)  "
        f"{verdict(ratio >= GOAL_RATIO)}"
    )
    print("  where the time goes (median s):")
    for name, rs in runs.items():
        print_steps(name, rs)


if __name__ == "__main__":
    main()
