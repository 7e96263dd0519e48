"""Runner benchmark (`make bench`; `make bench-1m` adds the 1,000,000-record case).

A benchmark, not a test: it prints figures against the goals of issue 14 and only refuses to
print them when a loader did not load every row (every count is checked IN the destination).

For N records (default 100,000, 10 fields, pages of 1,000) served by the demo source in its own
process, four contenders load the same data, each as a whole process (interpreter start
included), `--repeat` times, their order rotating from one repeat to the next:

  runner-pg    the real runner (`datapipelines-runner`) REST -> PostgreSQL
  hand-pg      urllib + json, then psycopg2 COPY into a typed table
  runner-duck  the real runner REST -> DuckDB
  hand-duck    urllib + json, then a pyarrow table typed as dlt types it -> DuckDB

and it prints min/median/max, the runner/hand ratio, where the runner's time goes (its
steps, from its report), a nested case (a `tags` list per record -> the `items__tags` child
table) and the start-up (process spawn -> first request at the source). `--million` adds
1,000,000 records through the runner into both destinations with its peak RSS, beside the
peak RSS of the N-record runs (the goal: flat in the number of records, < 400 MB).

usage: python runner-image/bench/bench.py [--records 100000] [--repeat 3] [--million]
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(REPO / "runner-image"), str(REPO / "resources")]

from datapipelines.runner.demo_source import DemoState, make_server  # noqa: E402
from tests.support.http_source import demo_source_spec  # noqa: E402
from tests.support.postgres import PostgresServer  # noqa: E402
from tests.support.processes import free_port  # noqa: E402

PY = sys.executable
RUNNER = [str(Path(PY).parent / "datapipelines-runner")]
if not Path(RUNNER[0]).exists():
    RUNNER = [PY, "-m", "datapipelines.runner.main"]
PAGE = 1000
#: the demo record's fields, typed as dlt types them (ISO strings -> timestamps)
COLUMNS = (
    ("id", "bigint", "BIGINT"),
    ("updated_at", "timestamptz", "TIMESTAMPTZ"),
    ("name", "text", "VARCHAR"),
    ("category", "text", "VARCHAR"),
    ("price", "double precision", "DOUBLE"),
    ("quantity", "bigint", "BIGINT"),
    ("active", "boolean", "BOOLEAN"),
    ("created_at", "timestamptz", "TIMESTAMPTZ"),
    ("description", "text", "VARCHAR"),
    ("score", "double precision", "DOUBLE"),
)
FIELDS = [c[0] for c in COLUMNS]
GOAL_RATIO, STRETCH_RATIO, GOAL_STARTUP_S, GOAL_RSS_MB = 0.5, 0.7, 0.5, 400


# --- the hand-written loaders (child processes: `bench.py hand-postgres|hand-duckdb`) --------


def pages(url: str) -> Iterator[list[dict[str, Any]]]:
    page = 1
    while True:
        with urllib.request.urlopen(f"{url}items?page={page}&page_size={PAGE}") as resp:
            items = json.load(resp)["items"]
        if not items:
            return
        yield items
        page += 1


def hand_postgres(url: str, dsn: str) -> int:
    import psycopg2

    conn = psycopg2.connect(dsn)
    rows = 0
    columns = ", ".join(f"{name} {pg}" for name, pg, _ in COLUMNS)
    with conn, conn.cursor() as cur:
        cur.execute(f"CREATE SCHEMA IF NOT EXISTS hand; CREATE TABLE hand.items ({columns})")
        for items in pages(url):
            buf = io.StringIO()
            csv.writer(buf).writerows([item[f] for f in FIELDS] for item in items)
            buf.seek(0)
            cur.copy_expert("COPY hand.items FROM STDIN WITH (FORMAT csv)", buf)
            rows += len(items)
    conn.close()
    return rows


def hand_duckdb(url: str, path: str) -> int:
    import duckdb
    import pyarrow as pa
    import pyarrow.compute as pc

    timestamp = pa.timestamp("us", tz="UTC")
    rows = 0
    columns = ", ".join(f"{name} {duck}" for name, _, duck in COLUMNS)
    with duckdb.connect(path) as conn:
        conn.execute(f"CREATE SCHEMA hand; CREATE TABLE hand.items ({columns})")
        for items in pages(url):
            table = pa.Table.from_pylist(items)
            for name, _, duck in COLUMNS:
                if duck == "TIMESTAMPTZ":
                    index = table.schema.get_field_index(name)
                    table = table.set_column(index, name, pc.cast(table[name], timestamp))
            conn.register("page", table)
            conn.execute("INSERT INTO hand.items SELECT * FROM page")
            conn.unregister("page")
            rows += len(items)
    return rows


# --- running things --------------------------------------------------------------------------


@dataclass
class Run:
    seconds: float
    max_rss_mb: float
    result: dict[str, Any] = field(default_factory=dict)
    stdout: str = ""

    @property
    def steps(self) -> dict[str, float]:
        """The runner's step timings, from the `timings:` line of its report."""
        match = re.search(r"^timings: (.+)$", self.result.get("report", ""), re.M)
        if not match:
            return {}
        return {
            step: float(secs.rstrip("s"))
            for step, secs in (part.split(" ") for part in match.group(1).split(", "))
        }


def timed(cmd: list[str], env: dict[str, str]) -> Run:
    """Runs `cmd` to the end: wall time and the child's own peak RSS (wait4)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            tail = err.read().decode()[-3000:]
            sys.exit(f"FAILED ({proc.returncode}): {' '.join(cmd)}\n{tail}")
        return Run(elapsed, usage.ru_maxrss / 1024, stdout=out.read().decode())


def run_runner(work: Path, name: str, connection: dict[str, Any]) -> Run:
    """The runner as a pod runs it: spec in the environment, a fresh data dir, secrets from
    ``work/secrets``; its result read from the termination log."""
    termination = work / f"term-{name}.json"
    env = {
        **os.environ,
        "DATAPIPELINES_CONNECTION_SPEC": json.dumps(connection),
        "DATAPIPELINES_CONNECTION_NAME": name,
        "DATAPIPELINES_DATA_DIR": str(work / f"data-{name}"),
        "DATAPIPELINES_SECRETS_DIR": str(work / "secrets"),
        "DATAPIPELINES_TERMINATION_LOG": str(termination),
    }
    run = timed(RUNNER, env)
    run.result = json.loads(termination.read_text())
    return run


class Bench:
    def __init__(self, work: Path, pg: PostgresServer) -> None:
        self.work = work
        self.pg = pg
        self.n_runs = 0
        (work / "secrets" / "wh").mkdir(parents=True)
        (work / "secrets" / "wh" / "password").write_text(pg.password)

    def postgres(self) -> tuple[dict[str, Any], str]:
        self.n_runs += 1
        database = self.pg.create_database(f"bench_{self.n_runs}")
        destination = {
            "type": "postgres",
            "postgres": {
                "host": self.pg.host,
                "port": self.pg.port,
                "database": database,
                "username": self.pg.user,
                "passwordSecretRef": {"name": "wh", "key": "password"},
                "sslMode": "disable",
            },
        }
        return destination, database

    def duckdb(self, name: str) -> tuple[dict[str, Any], Path]:
        self.n_runs += 1
        path = self.work / f"{name}-{self.n_runs}.duckdb"
        return {"type": "duckdb", "duckdb": {"path": str(path)}}, path

    def runner(self, url: str, destination: dict[str, Any]) -> Run:
        self.n_runs += 1
        connection = {
            "type": "rest_api",
            "schemaName": "bench",
            "source": demo_source_spec(url, PAGE, primary_key=None),
            "destination": destination,
        }
        return run_runner(self.work, f"bench-{self.n_runs}", connection)

    def hand(self, mode: str, url: str, target: str) -> Run:
        cmd = [PY, str(Path(__file__).resolve()), mode, "--url", url, "--target", target]
        return timed(cmd, dict(os.environ))

    # --- contenders: each checks its rows in the destination ---------------------------

    def runner_pg(self, url: str, n: int) -> Run:
        destination, database = self.postgres()
        run = self.runner(url, destination)
        expect(run.result["rowsInserted"], n, "runner -> PostgreSQL reported")
        count = self.pg.query("SELECT count(*) FROM bench.items", database=database)[0][0]
        expect(count, n, "runner -> PostgreSQL, rows in bench.items")
        return run

    def hand_pg(self, url: str, n: int) -> Run:
        _, database = self.postgres()
        run = self.hand("hand-postgres", url, self.pg.dsn(database))
        count = self.pg.query("SELECT count(*) FROM hand.items", database=database)[0][0]
        expect(count, n, "hand -> PostgreSQL, rows in hand.items")
        return run

    def runner_duck(self, url: str, n: int) -> Run:
        destination, path = self.duckdb("runner")
        run = self.runner(url, destination)
        expect(run.result["rowsInserted"], n, "runner -> DuckDB reported")
        expect(duckdb_count(path, "bench.items"), n, "runner -> DuckDB, rows in bench.items")
        return run

    def runner_nested_pg(self, url: str, n: int) -> Run:
        destination, database = self.postgres()
        run = self.runner(url, destination)
        expect(run.result["rowsInserted"], 3 * n, "nested runner -> PostgreSQL reported")
        for table, rows in (("items", n), ("items__tags", 2 * n)):
            count = self.pg.query(f"SELECT count(*) FROM bench.{table}", database=database)
            expect(count[0][0], rows, f"nested runner -> PostgreSQL, rows in bench.{table}")
        return run

    def runner_nested_duck(self, url: str, n: int) -> Run:
        destination, path = self.duckdb("nested")
        run = self.runner(url, destination)
        expect(run.result["rowsInserted"], 3 * n, "nested runner -> DuckDB reported")
        for table, rows in (("items", n), ("items__tags", 2 * n)):
            count = duckdb_count(path, f"bench.{table}")
            expect(count, rows, f"nested runner -> DuckDB, rows in bench.{table}")
        return run

    def hand_duck(self, url: str, n: int) -> Run:
        _, path = self.duckdb("hand")
        run = self.hand("hand-duckdb", url, str(path))
        expect(duckdb_count(path, "hand.items"), n, "hand -> DuckDB, rows in hand.items")
        return run


def expect(got: int, want: int, what: str) -> None:
    if got != want:
        sys.exit(f"BENCH INVALID: {what}: {got}, expected {want}")


def duckdb_count(path: Path, table: str) -> int:
    import duckdb

    with duckdb.connect(str(path), read_only=True) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    return int(row[0]) if row else 0


class DemoSource:
    """The demo source in its own process (the runner and the hand loaders share the CPU)."""

    def __init__(self, records: int, nested: bool = False) -> None:
        port = free_port()
        cmd = [PY, "-m", "datapipelines.runner.demo_source", "--port", str(port)]
        cmd += ["--records", str(records)] + (["--nested"] if nested else [])
        env = {**os.environ, "PYTHONPATH": str(REPO / "runner-image")}
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
        )
        self.url = f"http://127.0.0.1:{port}/"
        for _ in range(200):
            try:
                urllib.request.urlopen(self.url + "healthz", timeout=1).read()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("the demo source did not start")

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def startup_to_first_request(bench: Bench, destination: str, samples: int) -> list[float]:
    """Spawn -> first HTTP request at the source, for a 10-record sync."""
    seconds = []
    for _ in range(samples):
        state = DemoState(records=10, page_size=10)
        server = make_server("127.0.0.1", 0, state)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        dest = bench.postgres()[0] if destination == "pg" else bench.duckdb("startup")[0]
        t0 = time.time()
        bench.runner(url, dest)
        assert state.first_request_at is not None
        seconds.append(state.first_request_at - t0)
        server.shutdown()
        server.server_close()
    return seconds


# --- printing --------------------------------------------------------------------------------


def spread(values: list[float]) -> str:
    return f"{min(values):6.2f} {statistics.median(values):6.2f} {max(values):6.2f}"


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def print_steps(label: str, runs: list[Run]) -> None:
    steps: dict[str, list[float]] = {}
    for run in runs:
        for step, secs in run.steps.items():
            steps.setdefault(step, []).append(secs)
    inside = sum(statistics.median(v) for v in steps.values())
    whole = statistics.median(r.seconds for r in runs)
    parts = ", ".join(f"{s} {statistics.median(v):.2f}" for s, v in steps.items())
    print(f"  {label:<12} {parts}; process start, imports and report {whole - inside:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", nargs="?", default="bench")
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--startup-samples", type=int, default=5)
    parser.add_argument("--million", action="store_true", help="add the 1,000,000-record case")
    parser.add_argument("--url")
    parser.add_argument("--target")
    args = parser.parse_args()
    if args.mode == "hand-postgres":
        print(hand_postgres(args.url, args.target))
        return
    if args.mode == "hand-duckdb":
        print(hand_duckdb(args.url, args.target))
        return

    n = args.records
    work = Path(tempfile.mkdtemp(prefix="dp-bench-"))
    pg = PostgresServer().start()
    sources: list[DemoSource] = []
    try:
        pg.wait_ready()
        bench = Bench(work, pg)
        flat = DemoSource(n)
        sources.append(flat)
        t0 = time.perf_counter()
        fetched = sum(len(p) for p in pages(flat.url))
        fetch_only = time.perf_counter() - t0
        expect(fetched, n, "fetch only")

        contenders = {
            "runner-pg": bench.runner_pg,
            "hand-pg": bench.hand_pg,
            "runner-duck": bench.runner_duck,
            "hand-duck": bench.hand_duck,
        }
        names = list(contenders)
        runs: dict[str, list[Run]] = {k: [] for k in names}
        orders = []
        for i in range(args.repeat):
            order = names[i % len(names) :] + names[: i % len(names)]
            orders.append(" ".join(order))
            for name in order:
                runs[name].append(contenders[name](flat.url, n))

        nested = DemoSource(n, nested=True)
        sources.append(nested)
        nested_runs = {"pg": bench.runner_nested_pg(nested.url, n)}
        nested_runs["duck"] = bench.runner_nested_duck(nested.url, n)

        startup = {
            d: startup_to_first_request(bench, d, args.startup_samples) for d in ("duck", "pg")
        }

        million: dict[str, Run] = {}
        if args.million:
            big = DemoSource(1_000_000)
            sources.append(big)
            million["pg"] = bench.runner_pg(big.url, 1_000_000)
            million["duck"] = bench.runner_duck(big.url, 1_000_000)
    finally:
        for source in sources:
            source.close()
        pg.destroy()
        shutil.rmtree(work, ignore_errors=True)

    med = {k: statistics.median(r.seconds for r in v) for k, v in runs.items()}

    def rate(seconds: float, rows: int = n) -> str:
        return f"{rows / seconds / 1000:7.1f}k rows/s"

    print(
        f"\nrunner benchmark: {n:,} records x 10 fields, pages of {PAGE}, {args.repeat} repeats "
        f"(order rotates: {' | '.join(orders)}), {os.cpu_count()} CPUs"
    )
    print(f"  {'':<44} {'min':>6} {'median':>6} {'max':>6}  (seconds, whole processes)")
    print(f"  {'fetch only (urllib + json, in-process)':<44} {fetch_only:6.2f}{'':14}", end="")
    print(f"  {rate(fetch_only)}")
    labels = {
        "runner-pg": "runner  REST -> PostgreSQL (dlt, csv/COPY)",
        "hand-pg": "hand    REST -> PostgreSQL (psycopg2 COPY)",
        "runner-duck": "runner  REST -> DuckDB (dlt, parquet)",
        "hand-duck": "hand    REST -> DuckDB (pyarrow, typed)",
    }
    for key in names:
        times = [r.seconds for r in runs[key]]
        rss = max(r.max_rss_mb for r in runs[key])
        print(f"  {labels[key]:<44} {spread(times)}  {rate(med[key])}  peak RSS {rss:.0f} MB")
    print(
        "  runner throughput as a fraction of the hand-written loader's (runner rows/s / hand "
        f"rows/s, medians; goal >= {GOAL_RATIO}, stretch {STRETCH_RATIO}):"
    )
    for dest, runner_key, hand_key in (
        ("PostgreSQL", "runner-pg", "hand-pg"),
        ("DuckDB", "runner-duck", "hand-duck"),
    ):
        ratio = med[hand_key] / med[runner_key]
        mark = "stretch ok" if ratio >= STRETCH_RATIO else verdict(ratio >= GOAL_RATIO)
        print(f"    {dest:<10} {ratio:.2f}  {mark}")
    print("  where the runner's time goes (median seconds per step, from its report):")
    print_steps("PostgreSQL", runs["runner-pg"])
    print_steps("DuckDB", runs["runner-duck"])
    print(f"  nested: a `tags` list of 2 per record -> items + items__tags ({3 * n:,} rows)")
    for dest, run in nested_runs.items():
        label = "PostgreSQL" if dest == "pg" else "DuckDB"
        flat_key = "runner-pg" if dest == "pg" else "runner-duck"
        print(
            f"    {label:<10} {run.seconds:6.2f} s  {rate(run.seconds)} (records; flat: "
            f"{rate(med[flat_key])})  peak RSS {run.max_rss_mb:.0f} MB"
        )
        print_steps("", [run])
    print(f"  start-up, process spawn -> first request at the source (goal < {GOAL_STARTUP_S} s):")
    for dest, samples in startup.items():
        label = "PostgreSQL" if dest == "pg" else "DuckDB"
        median = statistics.median(samples)
        print(f"    {label:<10} {spread(samples)}  {verdict(median < GOAL_STARTUP_S)}")
    if million:
        print(f"  1,000,000 records, peak RSS (goal flat in the records, < {GOAL_RSS_MB} MB):")
        for dest, run in million.items():
            small_key = "runner-pg" if dest == "pg" else "runner-duck"
            small = max(r.max_rss_mb for r in runs[small_key])
            ok = run.max_rss_mb < GOAL_RSS_MB
            label = "PostgreSQL" if dest == "pg" else "DuckDB"
            print(
                f"    {label:<10} {run.seconds:6.2f} s  {rate(run.seconds, 1_000_000)}  peak RSS "
                f"{run.max_rss_mb:.0f} MB (at {n:,}: {small:.0f} MB)  {verdict(ok)}"
            )
            print_steps("", [run])


if __name__ == "__main__":
    main()
