"""The REST half of `make demo`: call the API like a user would and print what came back."""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

import httpx

DEFAULT_URL = "http://127.0.0.1:8081"


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    cells = [
        [str(row.get(c, "")) if row.get(c) is not None else "-" for c in columns] for row in rows
    ]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    line = "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(out)


def wait_ready(client: httpx.Client, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if client.get("/readyz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            sys.exit(f"the API at {client.base_url} did not become ready in {timeout:.0f} s")
        time.sleep(1)


def check(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        request = response.request
        sys.exit(f"{request.method} {request.url.path} -> {response.status_code}: {response.text}")
    return response.json()


def cli_commands(url: str, slow: str) -> str:
    """The same calls with the `datapipelines` CLI (it finds .cluster/api-key by itself)."""
    cli = ".venv/bin/datapipelines" + ("" if url == DEFAULT_URL else f" --api {url}")
    return (
        "The same with the CLI (live progress per table; -o json for scripts):\n"
        f"  {cli} connections\n"
        f"  {cli} run demo-items --wait --report\n"
        f"  {cli} run {slow}   # cancel it:\n"
        f"  {cli} cancel <task_id>\n"
        f"  {cli} tasks <task_id>\n"
        f"  {cli} history --limit 25\n"
        f"  {cli} logs <run_id>\n"
        f"  {cli} run-all --wait\n"
        f"\nAnd for agents, MCP over streamable HTTP: {url}/mcp with the X-API-Key header "
        "(README: The MCP endpoint)\n"
    )


def show_warehouse(path: str) -> None:
    """What the sync loaded, read from the warehouse file on the node (the data outlives the
    runner's pod: it is on the warehouse volume)."""
    import duckdb

    print(f"\n== the data, read from the warehouse volume ({path})")
    query = (
        "SELECT count(*) AS rows, min(id) AS first_id, max(id) AS last_id, "
        "max(updated_at) AS newest FROM demo_items.items"
    )
    print(f'  duckdb {path} "{query}"')
    try:
        with duckdb.connect(path, read_only=True) as con:
            row = con.execute(query).fetchone()
    except duckdb.Error as exc:
        print(f"  (could not read it: {exc})")
        return
    assert row is not None
    print(
        table(
            [dict(zip(["rows", "first_id", "last_id", "newest"], row, strict=True))],
            ["rows", "first_id", "last_id", "newest"],
        )
    )


def show_tables(path: str, schema: str) -> None:
    """The tables a sync loaded into ``schema`` of the warehouse file, with their row counts."""
    import duckdb

    print(f"\n== {schema} in the warehouse ({path})")
    try:
        with duckdb.connect(path, read_only=True) as con:
            names = [
                r[0]
                for r in con.execute(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = ? "
                    "AND table_name NOT LIKE '\\_dlt%' ESCAPE '\\' "
                    "AND table_name NOT LIKE '\\_datapipelines%' ESCAPE '\\' ORDER BY table_name",
                    [schema],
                ).fetchall()
            ]
            rows = [
                {
                    "table": n,
                    "rows": con.execute(f'SELECT count(*) FROM {schema}."{n}"').fetchone()[0],
                }
                for n in names
            ]
    except duckdb.Error as exc:
        print(f"  (could not read it: {exc})")
        return
    print(table(rows, ["table", "rows"]))


def main() -> None:

    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--slow-connection", default="demo-slow")
    parser.add_argument("--namespace", default="datapipelines")
    parser.add_argument("--mode", default="local")
    parser.add_argument("--warehouse", help="the warehouse DuckDB file on this machine")
    args = parser.parse_args()
    key = os.environ["DATAPIPELINES_API_KEY"]
    client = httpx.Client(base_url=args.url, headers={"X-API-Key": key}, timeout=900)
    wait_ready(client)

    print("\n== GET /connections")
    connections = check(client.get("/connections"))
    print(table(connections, ["name", "type", "enabled", "schema_name", "last_run_at"]))

    print("\n== POST /connections/demo-items/run  (synchronous: a real sync into DuckDB)")
    started = time.monotonic()
    result = check(client.post("/connections/demo-items/run", params={"include_report": "true"}))
    print(
        table(
            [result],
            [
                "run_id",
                "success",
                "rows_inserted",
                "records_reported",
                "duration_ms",
                "attempts",
                "error",
            ],
        )
    )
    print(f"(answered in {time.monotonic() - started:.1f} s)")
    if result.get("report"):
        print(
            "\nreport:\n"
            + "\n".join("  " + line for line in str(result["report"]).splitlines()[:20])
        )

    if args.warehouse:
        show_warehouse(args.warehouse)

    print("\n== POST /run_selected  (a batch of every enabled connection, asynchronous)")
    batch = check(client.post("/run_selected"))
    print(f"task_id={batch['task_id']} connections={batch['connections']}")
    status: dict[str, Any] = {}
    deadline = time.monotonic() + 900
    last = None
    while time.monotonic() < deadline:
        status = check(client.get(f"/task_status/{batch['task_id']}"))
        now = (status["status"], status.get("current"), tuple(status.get("completed", [])))
        if now != last:
            print(f"  status={now[0]:<9} current={now[1] or '-':<16} completed={list(now[2])}")
            last = now
        if not status.get("active", True):
            break
        time.sleep(1)
    print(
        table(
            [status],
            ["status", "connections", "completed", "canceled", "started_at", "finished_at"],
        )
    )

    if args.warehouse:  # the batch synced the Trello preset from its mock
        show_tables(args.warehouse, "trello_data")

    print(f"\n== POST /connections/{args.slow_connection}/run_async, then POST /cancel_task")
    task = check(client.post(f"/connections/{args.slow_connection}/run_async"))["task_id"]
    print(f"task_id={task}")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        single = check(client.get(f"/task_status/{task}"))
        records = (single.get("progress") or {}).get("records_extracted") or 0
        print(f"  status={single['status']:<9} records so far={records}")
        if single["status"] == "running" and records > 0:
            break
        time.sleep(2)
    print("  " + check(client.post(f"/cancel_task/{task}"))["message"])
    while time.monotonic() < deadline:
        single = check(client.get(f"/task_status/{task}"))
        if not single["active"]:
            break
        time.sleep(1)
    print(table([single], ["task_id", "status", "canceled", "phase", "error"]))
    cancelled = single["status"] == "cancelled"

    print("\n== GET /history?limit=10")
    history = check(client.get("/history", params={"limit": 10}))
    columns = ["run_id", "connection", "status", "success", "rows_inserted", "duration_ms", "error"]
    print(table(history, columns))

    ok = bool(result.get("success")) and status.get("status") == "finished" and cancelled
    kubectl = "kubectl"
    if args.mode == "local":
        kubectl = "KUBECONFIG=.cluster/kubeconfig ~/.cache/datapipelines/bin/kubernetes-*/kubectl"
    url, slow = args.url, args.slow_connection
    print(
        "\nTry it yourself (the key is $DATAPIPELINES_API_KEY when set, else .cluster/api-key):\n"
        "  export KEY=${DATAPIPELINES_API_KEY:-$(cat .cluster/api-key)}\n"
        f'  curl -H "X-API-Key: $KEY" {url}/connections\n'
        f'  curl -X POST -H "X-API-Key: $KEY" "{url}/connections/demo-items/run?include_report=1"\n'
        f'  curl -X POST -H "X-API-Key: $KEY" {url}/connections/{slow}/run_async  # cancel it:\n'
        f'  curl -X POST -H "X-API-Key: $KEY" {url}/cancel_task/<task_id>\n'
        f'  curl -H "X-API-Key: $KEY" {url}/task_status/<task_id>\n'
        f'  curl -H "X-API-Key: $KEY" "{url}/history?limit=25"\n'
        f'  curl -H "X-API-Key: $KEY" {url}/runs/<run_id>/logs\n'
        f"  {kubectl} -n {args.namespace} get pconn,prun,pbatch\n"
    )
    print(cli_commands(url, slow))
    print(
        f"\nThe console: open {url}/ui/ in a browser and sign in with the key (.cluster/api-key).\n"
    )
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
