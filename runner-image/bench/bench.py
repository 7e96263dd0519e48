"""Runner benchmark (`make bench`): prints figures, asserts only that the rows arrived.

For N records (default 100,000, 10 fields, pages of 1,000) served by the demo source in its own
process, it times, as whole processes (interpreter start included), median of `--repeat` runs:
  - the real runner (`datapipelines-runner`) REST → PostgreSQL (csv/COPY) and REST → DuckDB;
  - a plain hand-written loader on the same data: urllib + json, then PostgreSQL COPY
    (psycopg2 `copy_expert`), or a pyarrow table inserted into DuckDB;
and prints rows/s and the runner/hand-written ratio. It also measures the runner's start-up:
process spawn → first request at the source.

usage: python runner-image/bench/bench.py [--records 100000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(REPO / "runner-image")]

from datapipelines.runner.demo_source import DemoState, make_server  # noqa: E402
from tests.support.http_source import demo_source_spec  # noqa: E402
from tests.support.postgres import PostgresServer  # noqa: E402
from tests.support.processes import free_port  # noqa: E402

PY = sys.executable
RUNNER = [str(Path(PY).parent / "datapipelines-runner")]
if not Path(RUNNER[0]).exists():
    RUNNER = [PY, "-m", "datapipelines.runner.main"]
PAGE = 1000
COLUMNS = (
    "id bigint, updated_at timestamptz, name text, category text, price double precision, "
    "quantity bigint, active boolean, created_at timestamptz, description text, "
    "score double precision"
)
FIELDS = [c.split()[0] for c in COLUMNS.split(", ")]


# --- the hand-written loaders (run in a child process: `bench.py hand-postgres|hand-duckdb`) ---


def pages(url: str):
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
    with conn, conn.cursor() as cur:
        cur.execute(f"CREATE SCHEMA IF NOT EXISTS hand; CREATE TABLE hand.items ({COLUMNS})")
        for items in pages(url):
            buf = io.StringIO()
            writer = csv.writer(buf)
            writer.writerows([item[f] for f in FIELDS] for item in items)
            buf.seek(0)
            cur.copy_expert("COPY hand.items FROM STDIN WITH (FORMAT csv)", buf)
            rows += len(items)
    conn.close()
    return rows


def hand_duckdb(url: str, path: str) -> int:
    import duckdb
    import pyarrow as pa

    rows = 0
    with duckdb.connect(path) as conn:
        conn.execute("CREATE SCHEMA hand")
        first = True
        for items in pages(url):
            arrow_page = pa.Table.from_pylist(items)  # noqa: F841 - read by duckdb by name
            if first:
                conn.execute("CREATE TABLE hand.items AS SELECT * FROM arrow_page")
                first = False
            else:
                conn.execute("INSERT INTO hand.items SELECT * FROM arrow_page")
            rows += len(items)
    return rows


# --- the measurements ------------------------------------------------------------------------


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"FAILED ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    return elapsed, proc


def spec(url: str, destination: dict, schema: str) -> dict:
    return {
        "type": "rest_api",
        "schemaName": schema,
        "source": demo_source_spec(url, PAGE, primary_key=None),
        "destination": destination,
    }


def run_runner(work: Path, n: int, connection: dict, name: str) -> tuple[float, dict]:
    data = work / f"data-{name}"
    termination = work / f"term-{name}.json"
    env = {
        **os.environ,
        "DATAPIPELINES_CONNECTION_SPEC": json.dumps(connection),
        "DATAPIPELINES_CONNECTION_NAME": name,
        "DATAPIPELINES_DATA_DIR": str(data),
        "DATAPIPELINES_SECRETS_DIR": str(work / "secrets"),
        "DATAPIPELINES_TERMINATION_LOG": str(termination),
    }
    elapsed, _ = timed(RUNNER, env)
    result = json.loads(termination.read_text())
    if result["rowsInserted"] != n:
        sys.exit(f"runner inserted {result['rowsInserted']} rows, expected {n}")
    return elapsed, result


def startup_to_first_request(work: Path) -> float:
    """Spawn → first HTTP request at the source, for a tiny DuckDB sync (median of 3)."""
    samples = []
    for i in range(3):
        state = DemoState(records=10, page_size=10)
        server = make_server("127.0.0.1", 0, state)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        connection = spec(
            url, {"type": "duckdb", "duckdb": {"path": str(work / f"s{i}.duckdb")}}, "s"
        )
        env = {
            **os.environ,
            "DATAPIPELINES_CONNECTION_SPEC": json.dumps(connection),
            "DATAPIPELINES_DATA_DIR": str(work / f"startup-{i}"),
            "DATAPIPELINES_TERMINATION_LOG": str(work / "startup-term.json"),
        }
        t0 = time.time()
        subprocess.run(RUNNER, env=env, capture_output=True, check=True, timeout=120)
        assert state.first_request_at is not None
        samples.append(state.first_request_at - t0)
        server.shutdown()
        server.server_close()
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", nargs="?", default="bench")
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
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
    port = free_port()
    source = subprocess.Popen(
        [PY, "-m", "datapipelines.runner.demo_source", "--port", str(port), "--records", str(n)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(REPO / "runner-image")},
    )
    url = f"http://127.0.0.1:{port}/"
    pg = PostgresServer().start()
    try:
        pg.wait_ready()
        for _ in range(100):
            try:
                urllib.request.urlopen(url + "healthz", timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        (work / "secrets" / "wh").mkdir(parents=True)
        (work / "secrets" / "wh" / "password").write_text(pg.password)
        t0 = time.perf_counter()
        fetched = sum(len(p) for p in pages(url))
        fetch_only = time.perf_counter() - t0
        assert fetched == n

        times: dict[str, list[float]] = {k: [] for k in ("pg", "duck", "hand_pg", "hand_duck")}
        inner: dict[str, list[float]] = {"pg": [], "duck": []}
        for i in range(args.repeat):
            db = pg.create_database(f"bench_{i}")
            dest = {
                "type": "postgres",
                "postgres": {
                    "host": pg.host,
                    "port": pg.port,
                    "database": db,
                    "username": pg.user,
                    "passwordSecretRef": {"name": "wh", "key": "password"},
                    "sslMode": "disable",
                },
            }
            elapsed, result = run_runner(work, n, spec(url, dest, "bench"), f"pg{i}")
            assert pg.query("SELECT count(*) FROM bench.items", database=db) == [(n,)]
            times["pg"].append(elapsed)
            inner["pg"].append(result["durationMs"] / 1000)

            duck = {"type": "duckdb", "duckdb": {"path": str(work / f"runner-{i}.duckdb")}}
            elapsed, result = run_runner(work, n, spec(url, duck, "bench"), f"duck{i}")
            times["duck"].append(elapsed)
            inner["duck"].append(result["durationMs"] / 1000)

            me = [PY, str(Path(__file__).resolve())]
            elapsed, proc = timed(
                [*me, "hand-postgres", "--url", url, "--target", pg.dsn(db)], dict(os.environ)
            )
            assert int(proc.stdout.strip()) == n
            assert pg.query("SELECT count(*) FROM hand.items", database=db) == [(n,)]
            times["hand_pg"].append(elapsed)

            elapsed, proc = timed(
                [*me, "hand-duckdb", "--url", url, "--target", str(work / f"hand-{i}.duckdb")],
                dict(os.environ),
            )
            assert int(proc.stdout.strip()) == n
            times["hand_duck"].append(elapsed)

        startup = startup_to_first_request(work)
    finally:
        pg.destroy()
        source.terminate()
        source.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)

    med = {k: statistics.median(v) for k, v in times.items()}
    med_inner = {k: statistics.median(v) for k, v in inner.items()}

    def rate(seconds: float) -> str:
        return f"{n / seconds / 1000:8.1f}k rows/s"

    print(
        f"\nrunner benchmark: {n:,} records x 10 fields, pages of {PAGE}, "
        f"median of {args.repeat}, {os.cpu_count()} CPUs"
    )
    print(
        f"  fetch only (urllib + json, in-process)        {fetch_only:6.2f} s  {rate(fetch_only)}"
    )
    rows = [
        ("runner  REST -> PostgreSQL (csv/COPY)", "pg"),
        ("hand    REST -> PostgreSQL (COPY)", "hand_pg"),
        ("runner  REST -> DuckDB (jsonl)", "duck"),
        ("hand    REST -> DuckDB (pyarrow)", "hand_duck"),
    ]
    for label, key in rows:
        extra = f"   (sync alone {med_inner[key]:.2f} s)" if key in med_inner else ""
        print(f"  {label:<45} {med[key]:6.2f} s  {rate(med[key])}{extra}")
    print(
        f"  ratio hand/runner, PostgreSQL: {med['pg'] / med['hand_pg']:.1f}x   "
        f"DuckDB: {med['duck'] / med['hand_duck']:.1f}x   (whole processes)"
    )
    print(f"  runner start-up: process spawn -> first request at the source: {startup:.2f} s")


if __name__ == "__main__":
    main()
