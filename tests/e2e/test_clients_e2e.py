"""End to end: the clients of the API against the chart on the real local cluster — an MCP client
from the official SDK at /mcp, and the `datapipelines` CLI (as a process, and in a pseudo-
terminal) — with runner pods doing real syncs from the demo source on 127.0.0.1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pexpect
import pytest
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, TextContent

from tests.e2e.conftest import RECORDS
from tests.support.cluster import kubectl
from tests.support.release import Release
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.pods]

CLI = str(Path(sys.executable).with_name("datapipelines"))
TOOLS = {
    "list_connections",
    "connection_status",
    "connection_schema",
    "run_logs",
    "run_connection",
    "start_run",
    "run_all_enabled",
    "task_status",
    "wait_for_run",
    "cancel_task",
    "history",
}


# --- MCP -------------------------------------------------------------------------------------


@asynccontextmanager
async def mcp_client(rel: Release, key: str | None = None) -> AsyncIterator[Client]:
    headers = {"X-API-Key": rel.key if key is None else key}
    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=600)) as http:
        transport = streamable_http_client(f"{rel.url}/mcp", http_client=http)
        async with Client(transport, mode="legacy") as client:  # the initialize handshake
            yield client


def structured(result: CallToolResult) -> dict[str, Any]:
    text = "\n".join(c.text for c in result.content if isinstance(c, TextContent))
    assert not result.is_error, text
    assert result.structured_content is not None
    return result.structured_content


async def test_mcp_initialises_lists_tools_and_connections(api: Release) -> None:
    async with mcp_client(api) as client:
        assert client.server_info is not None and client.server_info.name == "datapipelines"
        tools = {t.name for t in (await client.list_tools()).tools}
        listed = structured(await client.call_tool("list_connections", {}))
    assert tools == TOOLS
    names = [c["name"] for c in listed["connections"]]
    assert {"e2e-mcp-items", "e2e-cli-items", "e2e-slow"} <= set(names)


async def test_mcp_runs_and_follows_a_run_to_the_end(api: Release) -> None:
    messages: list[str] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        messages.append(message or "")

    async with mcp_client(api) as client:
        result = structured(
            await client.call_tool(
                "run_connection",
                {"name": "e2e-mcp-items", "include_report": True},
                progress_callback=on_progress,
            )
        )
        # the same run in the background, followed with wait_for_run until it ends
        task_id = structured(await client.call_tool("start_run", {"name": "e2e-mcp-items"}))[
            "task_id"
        ]
        ended = False
        deadline = time.monotonic() + 300
        while not ended and time.monotonic() < deadline:
            waited = structured(
                await client.call_tool(
                    "wait_for_run",
                    {"task_id": task_id, "timeout_seconds": 60},
                    progress_callback=on_progress,
                )
            )
            ended = waited["ended"]
        status = structured(await client.call_tool("task_status", {"task_id": task_id}))
        history = structured(await client.call_tool("history", {"limit": 5}))
        schema = structured(await client.call_tool("connection_schema", {"name": "e2e-mcp-items"}))
    assert result["success"] is True, result
    assert result["rows_inserted"] == RECORDS and result["records_reported"] == RECORDS
    assert "rows inserted" in result["report"]
    assert any("Running" in m for m in messages), messages
    assert ended and status["status"] == "finished" and status["result"]["success"] is True
    assert task_id in [e["run_id"] for e in history["entries"]]
    # the real runner pod reported its tables through status.runnerResult.loadedSchema
    assert schema["source"] == "run" and "items" in [t["name"] for t in schema["tables"]], schema


async def test_mcp_tool_error_for_an_unknown_connection(api: Release) -> None:
    async with mcp_client(api) as client:
        result = await client.call_tool("run_connection", {"name": "e2e-nope"})
    text = "\n".join(c.text for c in result.content if isinstance(c, TextContent))
    assert result.is_error is True
    assert "connection 'e2e-nope' not found" in text


async def test_mcp_is_refused_without_a_key(api: Release) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    async with httpx.AsyncClient(base_url=api.url) as http:
        missing = await http.post("/mcp", json=body)
        wrong = await http.post("/mcp", json=body, headers={"X-API-Key": "wrong-key"})
    assert missing.status_code == 401 and wrong.status_code == 401
    with pytest.raises(ExceptionGroup) as refused:  # the SDK cannot initialise
        async with mcp_client(api, key="wrong-key"):
            pass
    assert refused.group_contains(MCPError)


# --- the CLI ---------------------------------------------------------------------------------


def cli(rel: Release, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATAPIPELINES_")}
    env.update(DATAPIPELINES_API_URL=rel.url, DATAPIPELINES_API_KEY=rel.key)
    return subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=timeout)


def as_json(proc: subprocess.CompletedProcess[str]) -> Any:
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    return json.loads(proc.stdout)


def test_cli_reads(api: Release) -> None:
    names = [c["name"] for c in as_json(cli(api, "connections", "-o", "json"))]
    assert {"e2e-mcp-items", "e2e-cli-items", "e2e-slow"} <= set(names)
    enabled = [c["name"] for c in as_json(cli(api, "connections", "--enabled", "-o", "json"))]
    assert "e2e-slow" not in enabled and "e2e-cli-items" in enabled
    table = cli(api, "connections")
    assert table.returncode == 0 and "e2e-cli-items" in table.stdout
    assert as_json(cli(api, "status", "e2e-cli-items", "-o", "json"))["name"] == "e2e-cli-items"
    assert cli(api, "status", "e2e-cli-items").returncode == 0


def test_cli_run_with_wait_to_completion_then_tasks_history_logs(api: Release) -> None:
    result = as_json(cli(api, "run", "e2e-cli-items", "--wait", "-o", "json"))
    assert result["success"] is True and result["rows_inserted"] == RECORDS
    run_id = result["run_id"]
    task = as_json(cli(api, "tasks", run_id, "-o", "json"))
    assert task["status"] == "finished" and task["result"]["rows_inserted"] == RECORDS
    assert cli(api, "tasks", run_id).returncode == 0
    history = as_json(cli(api, "history", "--limit", "10", "-o", "json"))
    assert run_id in [e["run_id"] for e in history]
    assert run_id in cli(api, "history").stdout
    # the Job (and its pod) is kept for an hour: the pod's log
    logs = as_json(cli(api, "logs", run_id, "-o", "json"))
    assert logs["source"] == "pod" and logs["pod"].startswith(run_id) and logs["text"], logs
    plain = cli(api, "logs", run_id)
    assert plain.returncode == 0 and plain.stdout.strip() and "log of pod" in plain.stderr
    schema = as_json(cli(api, "schema", "e2e-cli-items", "-o", "json"))
    assert schema["source"] == "run" and schema["run_id"] == run_id
    columns = {c["name"] for t in schema["tables"] if t["name"] == "items" for c in t["columns"]}
    assert {"id", "_dlt_load_id"} <= columns, schema
    assert "items" in cli(api, "schema", "e2e-cli-items").stdout
    table = cli(api, "run", "e2e-cli-items", "--wait", "--report", "--interval", "0.5")
    assert table.returncode == 0, table.stderr
    assert "succeeded" in table.stdout and "rows inserted" in table.stdout
    # a full refresh through the API, the operator and the runner pod: every row replaced
    refresh = as_json(
        cli(api, "run", "e2e-cli-items", "--full-refresh", "--wait", "--report", "-o", "json")
    )
    assert refresh["success"] is True and refresh["rows_inserted"] == RECORDS, refresh
    assert "run options: full refresh" in refresh["report"] and "replaced" in refresh["report"]
    task = as_json(cli(api, "tasks", refresh["run_id"], "-o", "json"))
    assert task["options"] == {"full_refresh": True, "streams": [], "since": None}


def test_cli_cancel_of_a_slow_run(api: Release) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATAPIPELINES_")}
    env.update(DATAPIPELINES_API_URL=api.url, DATAPIPELINES_API_KEY=api.key)
    waiting = subprocess.Popen(
        [CLI, "run", "e2e-slow", "--wait", "-o", "json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def running_with_records() -> str | None:
            slow = next(
                c for c in as_json(cli(api, "connections", "-o", "json")) if c["name"] == "e2e-slow"
            )
            if not slow["active_runs"]:
                return None
            run_id = str(slow["active_runs"][0])
            task = as_json(cli(api, "tasks", run_id, "-o", "json"))
            records = (task.get("progress") or {}).get("records_extracted") or 0
            return run_id if task["status"] == "running" and records > 0 else None

        run_id = wait_for(running_with_records, "the slow run to extract records", 180, 1)
        conflict = cli(api, "run", "e2e-slow")  # Forbid: one line, naming the active run
        assert conflict.returncode == 4 and f"datapipelines cancel {run_id}" in conflict.stderr
        cancel = cli(api, "cancel", run_id)
        assert cancel.returncode == 0 and "cancellation of run" in cancel.stdout
        out, err = waiting.communicate(timeout=180)
    finally:
        if waiting.poll() is None:
            waiting.kill()
    assert waiting.returncode == 3, err  # cancelled
    body = json.loads(out)
    assert body["success"] is False and body["status"] == "cancelled"
    final = as_json(cli(api, "tasks", run_id, "-o", "json"))
    assert final["status"] == "cancelled" and final["canceled"] is True
    again = cli(api, "cancel", run_id)
    assert again.returncode == 4 and "already finished" in again.stderr
    logs = cli(api, "logs", run_id)
    assert logs.returncode == 0


def test_cli_run_all_with_wait(api: Release) -> None:
    # one batch (two runs of real pods): its JSON from the wait, its table from `tasks`
    final = as_json(cli(api, "run-all", "--wait", "--interval", "0.5", "-o", "json"))
    assert final["kind"] == "batch" and final["status"] == "finished"
    assert all(r["success"] for r in final["runs"])
    table = cli(api, "tasks", final["task_id"])
    assert table.returncode == 0, table.stderr
    assert "e2e-cli-items" in table.stdout and "e2e-slow" not in table.stdout


def test_a_service_account_token_through_the_api_pod(api: Release) -> None:
    """The API pod reviews a token with its ServiceAccount (the chart's api-auth rights), and
    the chart's viewer role lets it read, not run; the CLI sends it with --token."""
    ns = api.ns
    kubectl("create", "serviceaccount", "e2e-reader", "-n", ns)
    kubectl(
        "create", "rolebinding", "e2e-reader", "-n", ns,
        f"--clusterrole=dp-datapipelines-{ns}-viewer", f"--serviceaccount={ns}:e2e-reader",
    )  # fmt: skip
    token = kubectl("create", "token", "e2e-reader", "-n", ns, "--duration=10m").stdout.strip()
    listed = cli(api, "--token", token, "connections", "-o", "json")
    assert listed.returncode == 0, listed.stderr
    assert "e2e-cli-items" in {c["name"] for c in json.loads(listed.stdout)}
    refused = cli(api, "--token", token, "run", "e2e-cli-items")
    assert refused.returncode == 4 and "may not run" in refused.stderr, refused.stderr
    forged = httpx.get(f"{api.url}/connections", headers={"Authorization": "Bearer forged"})
    assert forged.status_code == 401


def test_cli_errors_are_one_line(api: Release) -> None:
    unknown = cli(api, "status", "e2e-nope")
    assert unknown.returncode == 4
    assert unknown.stderr.strip() == "error: connection 'e2e-nope' not found"
    wrong = cli(api, "--key", "wrong-key", "connections")
    assert wrong.returncode == 4 and "invalid API key" in wrong.stderr
    assert "Traceback" not in unknown.stderr + wrong.stderr


def test_cli_live_progress_in_a_pseudo_terminal(api: Release) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATAPIPELINES_")}
    env.update(DATAPIPELINES_API_URL=api.url, DATAPIPELINES_API_KEY=api.key, TERM="xterm")
    child = pexpect.spawn(
        CLI,
        ["run", "e2e-cli-items", "--wait", "--interval", "0.2"],
        env=env,
        dimensions=(40, 140),
        encoding="utf-8",
        timeout=300,
    )
    child.expect("RECORDS EXTRACTED")  # the live table is drawn
    child.expect(r"status[^\n]*succeeded")  # then the result
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


async def test_a_failed_runs_log_outlives_its_job_and_pod(api: Release) -> None:
    """The runner keeps its log lines with the run: once the Job and its pod are deleted, REST,
    the CLI and MCP still read them (the error and what led to it)."""
    failed = cli(api, "run", "e2e-broken", "--wait", "-o", "json")
    assert failed.returncode == 1, failed.stderr
    run_id = json.loads(failed.stdout)["run_id"]
    kubectl("-n", api.ns, "delete", "job", run_id, "--cascade=foreground", "--wait=true")
    wait_for(
        lambda: (
            not kubectl(
                "-n", api.ns, "get", "pods", "-l", f"datapipelines.io/run={run_id}", "-o", "name"
            ).stdout.strip()
        ),
        timeout=120,
        what=f"the pods of {run_id} to be gone",
    )
    async with httpx.AsyncClient(headers={"X-API-Key": api.key}, timeout=30) as http:
        rest = (await http.get(f"{api.url}/runs/{run_id}/logs")).json()
    assert rest["source"] == "stored" and rest["phase"] == "Failed", rest
    assert "bad credentials" in rest["text"] or "401" in rest["text"], rest["text"]
    assert "sync of connection e2e-broken" in rest["text"]
    plain = cli(api, "logs", run_id)
    assert plain.returncode == 0 and "kept with the run" in plain.stderr
    assert plain.stdout == rest["text"]
    async with mcp_client(api) as client:
        tool = structured(await client.call_tool("run_logs", {"run_id": run_id, "tail_lines": 3}))
    lines = tool["text"].splitlines()
    assert tool["source"] == "stored" and 1 <= len(lines) <= 3, tool
    assert lines[-1] == rest["text"].splitlines()[-1]  # the tail: the error line
