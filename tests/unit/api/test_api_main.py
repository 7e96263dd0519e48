"""The `datapipelines-api` console script as a real process (no cluster: nothing to reach)."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from datapipelines.api.logs import JsonFormatter

SCRIPT = Path(sys.executable).with_name("datapipelines-api")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(env: dict[str, str], port: int) -> subprocess.Popen[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("DATAPIPELINES_", "KUBE"))}
    full.update({"DATAPIPELINES_API_HOST": "127.0.0.1", "DATAPIPELINES_API_PORT": str(port)})
    full.update(env)
    return subprocess.Popen(
        [str(SCRIPT)], env=full, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _wait_up(url: str, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {proc.stdout.read() if proc.stdout else ''}")
        try:
            httpx.get(url + "/healthz", timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError("server did not start")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    port = _free_port()
    kubeconfig = tmp_path / "kubeconfig"  # points at a closed port: the apiserver is "down"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "c",
                "clusters": [
                    {"name": "c", "cluster": {"server": f"http://127.0.0.1:{_free_port()}"}}
                ],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
            }
        )
    )
    proc = _start(
        {
            "DATAPIPELINES_API_KEY": "proc-key-123456",
            "KUBECONFIG": str(kubeconfig),
            "DATAPIPELINES_NAMESPACE": "x",
        },
        port,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_up(url, proc)
        yield url, proc
    finally:
        proc.terminate()
        proc.wait(10)


def test_process_serves_probes_and_503_without_apiserver(
    server: tuple[str, subprocess.Popen[str]],
) -> None:
    url, proc = server
    assert httpx.get(url + "/healthz").json() == {"status": "ok", "detail": None}
    ready = httpx.get(url + "/readyz")
    assert ready.status_code == 503 and ready.json()["status"] == "not ready"
    resp = httpx.get(url + "/connections", headers={"X-API-Key": "proc-key-123456"})
    assert resp.status_code == 503 and "Kubernetes API not reachable" in resp.json()["detail"]
    assert httpx.get(url + "/connections").status_code == 401
    assert "datapipelines_api_requests_total" in httpx.get(url + "/metrics").text
    proc.terminate()
    out, _ = proc.communicate(timeout=10)
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert lines, out
    assert all({"ts", "level", "logger", "msg"} <= set(line) for line in lines)
    assert "proc-key-123456" not in out


def test_process_without_key_starts_and_answers_500(tmp_path: Path) -> None:
    port = _free_port()
    proc = _start({"KUBECONFIG": str(tmp_path / "missing")}, port)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_up(url, proc)
        resp = httpx.get(url + "/connections", headers={"X-API-Key": "x"})
        assert resp.status_code == 500
        assert "DATAPIPELINES_API_KEY is not configured" in resp.json()["detail"]
    finally:
        proc.terminate()
        proc.wait(10)


def test_process_refuses_a_placeholder_key() -> None:
    proc = _start({"DATAPIPELINES_API_KEY": "changeme"}, _free_port())
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 2
    assert "placeholder" in out and "changeme" not in out.replace("CHANGEME", "")


def test_json_formatter_includes_extras() -> None:
    import logging

    record = logging.LogRecord("n", logging.INFO, "f", 1, "hello %s", ("x",), None)
    record.run = "r-1"
    data = json.loads(JsonFormatter().format(record))
    assert data["msg"] == "hello x" and data["run"] == "r-1" and data["level"] == "info"


async def test_operation_ids_are_the_handlers_names_and_tags_are_described(
    anon: httpx.AsyncClient,
) -> None:
    spec = (await anon.get("/openapi.json")).json()
    ids = [op["operationId"] for path in spec["paths"].values() for op in path.values()]
    assert len(ids) == len(set(ids))
    assert {"list_connections", "run_connection", "cancel_task", "task_status"} <= set(ids)
    described = {t["name"] for t in spec["tags"] if t.get("description")}
    used = {t for path in spec["paths"].values() for op in path.values() for t in op["tags"]}
    assert used <= described
    schemas = spec["components"]["schemas"]
    for model, field in [
        ("ConnectionStatusOut", "last_run_at"),
        ("ConnectionStatusOut", "last_success_at"),
        ("HistoryEntryOut", "finished_at"),
    ]:
        options = schemas[model]["properties"][field].get("anyOf") or [
            schemas[model]["properties"][field]
        ]
        assert {"type": "string", "format": "date-time"} in options, (model, field)


async def test_docs_load_nothing_from_elsewhere(anon: httpx.AsyncClient) -> None:
    for path in ("/docs", "/redoc"):
        page = await anon.get(path)
        assert page.status_code == 200
        assert "http://" not in page.text and "https://" not in page.text, path
        for asset in re.findall(r'(?:src|href)="(/docs-static/[^"]+)"', page.text):
            assert (await anon.get(asset)).status_code == 200, asset
