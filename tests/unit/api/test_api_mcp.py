"""The MCP endpoint at /mcp, through the official SDK's client over real streamable HTTP
(uvicorn on 127.0.0.1) against the app over the in-memory fake store."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, TextContent

from datapipelines.api.deps import NOT_CONFIGURED
from datapipelines.api.main import create_app
from datapipelines.api.mcp.progress import ProgressNotifier, describe
from datapipelines.api.models import ProgressOut, TaskStatusOut
from datapipelines.api.settings import Settings
from tests.support.asgi_server import AsgiServer
from tests.unit.api.fakekube import KEY, FakeStore
from tests.unit.api.runscript import cancel_ends_runs, script_runs, typical

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
RESULT_FIELDS = {
    "success",
    "duration_ms",
    "rows_inserted",
    "error",
    "report",
    "attempts",
    "records_reported",
    "progress_counts",
    "run_id",
}


@pytest.fixture
def server(fake: FakeStore, settings: Settings) -> Iterator[AsgiServer]:
    with AsgiServer(create_app(settings, kube=fake, archive=None)) as srv:
        yield srv


@asynccontextmanager
async def connect(url: str, key: str | None = KEY, mode: str = "legacy") -> AsyncIterator[Client]:
    headers = {"X-API-Key": key} if key is not None else {}
    timeout = httpx2.Timeout(30, read=60)
    async with httpx2.AsyncClient(headers=headers, timeout=timeout) as http:
        transport = streamable_http_client(f"{url}/mcp", http_client=http)
        async with Client(transport, mode=mode) as client:
            yield client


def text_of(result: CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))


def structured(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    return result.structured_content


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_initialise_and_list_tools(server: AsgiServer, mode: str) -> None:
    async with connect(server.url, mode=mode) as client:
        assert client.server_info is not None and client.server_info.name == "datapipelines"
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert set(tools) == TOOLS
    for tool in tools.values():
        # written for an agent: what, when, returns, how long
        assert tool.description and len(tool.description) > 150, tool.name
        assert tool.input_schema["type"] == "object"
        assert tool.output_schema is not None, tool.name
    run = tools["run_connection"]
    assert run.input_schema["required"] == ["name"]
    assert run.input_schema["properties"]["include_report"]["default"] is False
    assert "description" in run.input_schema["properties"]["name"]
    assert run.output_schema is not None
    assert set(run.output_schema["properties"]) >= RESULT_FIELDS
    assert tools["history"].input_schema["properties"]["limit"]["maximum"] == 1000
    for name in ("run_connection", "start_run"):  # never required: a plain run by default
        props = tools[name].input_schema["properties"]
        assert {"full_refresh", "streams", "since"} <= set(props)
        assert props["full_refresh"]["default"] is False
        assert tools[name].input_schema["required"] == ["name"]
    assert tools["list_connections"].annotations is not None
    assert tools["list_connections"].annotations.read_only_hint is True
    assert tools["cancel_task"].annotations is not None
    assert tools["cancel_task"].annotations.destructive_hint is True


async def test_list_connections_and_status(server: AsgiServer) -> None:
    async with connect(server.url) as client:
        every = structured(await client.call_tool("list_connections", {}))
        enabled = structured(await client.call_tool("list_connections", {"only_enabled": True}))
        status = structured(await client.call_tool("connection_status", {"name": "alpha"}))
    assert [c["name"] for c in every["connections"]] == ["alpha", "beta", "gamma"]
    assert [c["name"] for c in enabled["connections"]] == ["alpha", "gamma"]
    assert status["name"] == "alpha" and status["last_run_success"] is None
    # the same bodies as the REST API
    async with httpx.AsyncClient(base_url=server.url, headers={"X-API-Key": KEY}) as rest:
        assert every["connections"] == (await rest.get("/connections")).json()
        assert status == (await rest.get("/connections/alpha/status")).json()


async def test_run_connection_sends_progress_and_returns_the_run_result(
    server: AsgiServer, fake: FakeStore
) -> None:
    await server.acall(script_runs, fake, typical(gap=0.2, rows=1500))
    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, total, message))

    async with connect(server.url) as client:
        result = await client.call_tool(
            "run_connection",
            {"name": "alpha", "include_report": True},
            progress_callback=on_progress,
        )
    body = structured(result)
    assert set(body) >= RESULT_FIELDS
    assert body["success"] is True and body["status"] == "succeeded"
    assert body["rows_inserted"] == 1500 and body["records_reported"] == 1500
    assert body["report"] == "loaded 10 rows" and body["run_id"].startswith("alpha-")
    messages = [m or "" for _, _, m in progress]
    values = [v for v, _, _ in progress]
    assert values == sorted(values) and len(set(values)) == len(values)  # strictly increasing
    assert any("Queued" in m for m in messages)
    assert any("extract · 750 records extracted · items 750" in m for m in messages), messages
    assert any("load · 1500 records extracted · items 1400, users 100" in m for m in messages)
    assert all(m.startswith(body["run_id"] + ": ") for m in messages)


async def test_failed_run_is_a_result_not_a_tool_error(server: AsgiServer, fake: FakeStore) -> None:
    await server.acall(script_runs, fake, typical(gap=0.02, phase="Failed", error="source down"))
    async with connect(server.url) as client:
        body = structured(await client.call_tool("run_connection", {"name": "alpha"}))
    assert body["success"] is False and body["status"] == "failed"
    assert body["error"] == "source down" and body["report"] is None


async def test_tool_errors_carry_the_rest_message(server: AsgiServer, fake: FakeStore) -> None:
    await server.acall(fake.add_run, "alpha-active", "alpha", "Running")
    async with connect(server.url) as client:
        unknown = await client.call_tool("run_connection", {"name": "nope"})
        status = await client.call_tool("connection_status", {"name": "nope"})
        busy = await client.call_tool("start_run", {"name": "alpha"})
        task = await client.call_tool("task_status", {"task_id": "nope-123"})
        bad_limit = await client.call_tool("history", {"limit": 0})
    for result in (unknown, status, busy, task, bad_limit):
        assert result.is_error is True
    assert "connection 'nope' not found" in text_of(unknown)
    assert "list_connections gives the valid names" in text_of(unknown)
    assert "connection 'nope' not found" in text_of(status)
    message = text_of(busy)
    assert "already has an active run 'alpha-active'" in message
    assert "concurrencyPolicy is Forbid" in message
    assert "cancel_task(task_id='alpha-active')" in message
    assert "task 'nope-123' not found" in text_of(task)
    assert "limit" in text_of(bad_limit)


async def test_background_run_status_wait_and_cancel(server: AsgiServer, fake: FakeStore) -> None:
    await server.acall(cancel_ends_runs, fake)
    async with connect(server.url) as client:
        started = structured(await client.call_tool("start_run", {"name": "alpha"}))
        task_id = started["task_id"]
        assert started["connection"] == "alpha"
        status = structured(await client.call_tool("task_status", {"task_id": task_id}))
        assert status["kind"] == "single" and status["status"] == "queued" and status["active"]
        waited = structured(
            await client.call_tool("wait_for_run", {"task_id": task_id, "timeout_seconds": 1})
        )
        assert waited["ended"] is False and waited["task"]["active"] is True
        cancel = structured(await client.call_tool("cancel_task", {"task_id": task_id}))
        assert cancel == {
            "message": f"cancellation of run {task_id!r} requested",
            "task_id": task_id,
            "kind": "single",
        }
        waited = structured(await client.call_tool("wait_for_run", {"task_id": task_id}))
        assert waited["ended"] is True
        assert waited["task"]["status"] == "cancelled" and waited["task"]["canceled"] is True
        again = await client.call_tool("cancel_task", {"task_id": task_id})
        assert again.is_error and "already finished" in text_of(again)


async def test_wait_for_run_follows_to_the_end(server: AsgiServer, fake: FakeStore) -> None:
    await server.acall(script_runs, fake, typical(gap=0.05, rows=40))
    messages: list[str] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        messages.append(message or "")

    async with connect(server.url, mode="auto") as client:
        task_id = structured(await client.call_tool("start_run", {"name": "gamma"}))["task_id"]
        waited = structured(
            await client.call_tool(
                "wait_for_run", {"task_id": task_id}, progress_callback=on_progress
            )
        )
        batch = structured(await client.call_tool("run_all_enabled", {}))
        not_a_run = await client.call_tool("wait_for_run", {"task_id": batch["task_id"]})
    assert waited["ended"] is True and waited["task"]["result"]["rows_inserted"] == 40
    assert any("records extracted" in m for m in messages)
    assert batch["connections"] == ["alpha", "gamma"]
    assert not_a_run.is_error and "is a batch" in text_of(not_a_run)


async def test_batch_and_history(server: AsgiServer, fake: FakeStore) -> None:
    await server.acall(fake.add_run, "alpha-old", "alpha", "Succeeded", result={"success": True})
    async with connect(server.url) as client:
        batch = structured(await client.call_tool("run_all_enabled", {}))
        status = structured(await client.call_tool("task_status", {"task_id": batch["task_id"]}))
        history = structured(await client.call_tool("history", {"limit": 5}))
    assert status["kind"] == "batch" and status["connections"] == ["alpha", "gamma"]
    assert history["archive"] == "not-configured"
    assert [e["run_id"] for e in history["entries"]] == ["alpha-old"]


async def test_refused_without_the_key(server: AsgiServer) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    async with httpx.AsyncClient(base_url=server.url) as http:
        missing = await http.post("/mcp", json=body)
        wrong = await http.post("/mcp", json=body, headers={"X-API-Key": "wrong-key"})
    assert missing.status_code == 401
    assert missing.json() == {"detail": "missing API key: send it in the X-API-Key header"}
    assert missing.headers["www-authenticate"] == "APIKey"
    assert wrong.status_code == 401 and wrong.json() == {"detail": "invalid API key"}
    # the SDK's client cannot even initialise
    for key in (None, "wrong-key"):
        with pytest.raises(ExceptionGroup) as refused:
            async with connect(server.url, key=key):
                pass
        assert refused.group_contains(MCPError, match="Server returned an error response")


async def test_no_key_configured_is_500(fake: FakeStore) -> None:
    app = create_app(Settings(api_key=None, namespace="test"), kube=fake, archive=None)
    with AsgiServer(app) as server:
        async with httpx.AsyncClient(base_url=server.url) as http:
            resp = await http.post("/mcp", json={}, headers={"X-API-Key": "anything"})
    assert resp.status_code == 500 and resp.json() == {"detail": NOT_CONFIGURED}


async def test_the_old_key_of_a_rotation_works_too(server: AsgiServer) -> None:
    from tests.unit.api.fakekube import OLD_KEY

    async with connect(server.url, key=OLD_KEY) as client:
        assert (await client.list_tools()).tools


async def test_mcp_not_in_openapi_and_metrics_label_the_route(server: AsgiServer) -> None:
    async with connect(server.url) as client:
        await client.call_tool("list_connections", {})
    async with httpx.AsyncClient(base_url=server.url) as http:
        assert "/mcp" not in (await http.get("/openapi.json")).json()["paths"]
        metrics = (await http.get("/metrics")).text
    assert 'route="/mcp"' in metrics


async def test_mcp_outside_the_lifespan_is_503(app: Any) -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://api.test"
    ) as http:
        resp = await http.post("/mcp", json={}, headers={"X-API-Key": KEY})
    assert resp.status_code == 503 and "not running" in resp.json()["detail"]


# --- progress notifications, without a server ------------------------------------------------


def _status(**fields: Any) -> TaskStatusOut:
    base: dict[str, Any] = {
        "task_id": "alpha-1",
        "kind": "single",
        "status": "running",
        "connections": ["alpha"],
        "completed": [],
        "canceled": False,
        "started_at": None,
        "active": True,
        "phase": "Running",
    }
    return TaskStatusOut(**{**base, **fields})


def test_describe() -> None:
    assert describe(_status(status="queued", phase="Queued")) == "alpha-1: Queued"
    progress = ProgressOut(stage="load", records_extracted=30, tables={"b": 10, "a": 20})
    assert (
        describe(_status(progress=progress, attempts=2))
        == "alpha-1: Running · load · 30 records extracted · a 20, b 10 · attempt 2"
    )


async def test_notifier_increases_and_repeats_the_last_state() -> None:
    sent: list[tuple[float, str]] = []

    async def send(value: float, message: str) -> None:
        sent.append((value, message))

    async with ProgressNotifier(send, heartbeat=0.05) as notify:
        await notify(_status())
        await notify(_status())  # the same instant: still strictly increasing
        await asyncio.sleep(0.18)
    assert len(sent) >= 4  # two updates and heartbeats
    values = [v for v, _ in sent]
    assert all(b > a for a, b in itertools.pairwise(values))
    assert {m for _, m in sent} == {"alpha-1: Running"}


async def test_notifier_survives_a_failing_send() -> None:
    async def send(value: float, message: str) -> None:
        raise ConnectionError("client went away")

    async with ProgressNotifier(send, heartbeat=0.01) as notify:
        await notify(_status())
        await asyncio.sleep(0.03)


def test_tool_error_message_hints() -> None:
    from datapipelines.api.errors import Conflict, KubeUnavailable, WaitTimeout
    from datapipelines.api.mcp.tools import tool_error_message

    conflict = Conflict("busy", active_task_id="a-1", connection="a")
    assert tool_error_message(conflict) == (
        "busy. With MCP: wait_for_run(task_id='a-1') waits for it, "
        "cancel_task(task_id='a-1') cancels it."
    )
    timeout = tool_error_message(WaitTimeout("slow", run_id="a-2"))
    assert "wait_for_run(task_id='a-2')" in timeout
    assert tool_error_message(KubeUnavailable("down")) == "down"
    assert json.dumps(conflict.body())  # the REST body stays what it was


#: in a fresh interpreter: the app starts (lifespan) and answers REST without the MCP SDK;
#: the first /mcp request imports it and is answered
_LAZY_SDK = """
import sys
from fastapi.testclient import TestClient
from datapipelines.api.main import create_app
from datapipelines.api.settings import Settings
from tests.unit.api.fakekube import KEY, FakeStore

settings = Settings(api_key=KEY, namespace="test")
with TestClient(create_app(settings, kube=FakeStore(), archive=None)) as client:
    assert client.get("/connections", headers={"X-API-Key": KEY}).status_code == 200
    assert not [m for m in sys.modules if m == "mcp" or m.startswith("mcp.")], "SDK imported"
    body = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "t", "version": "0"}}}
    headers = {"X-API-Key": KEY, "Accept": "application/json, text/event-stream"}
    answer = client.post("/mcp", json=body, headers=headers)
    assert answer.status_code == 200, answer.text
    assert "datapipelines" in answer.text
    assert "mcp" in sys.modules
print("ok")
"""


def test_the_sdk_is_imported_on_the_first_mcp_request() -> None:
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[3]
    done = subprocess.run(
        [sys.executable, "-c", _LAZY_SDK], cwd=repo, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
