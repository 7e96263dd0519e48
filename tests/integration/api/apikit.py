"""Helpers of the API's integration tests: the API as a real process and the tests' stand-in
for the operator (status written with kubectl). Shared helpers: tests/support/ (kube.py,
processes.py, waiting.py, http_source.py).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.support.cluster import KUBECONFIG, kubectl
from tests.support.processes import Process, free_port
from tests.support.waiting import wait_for

API_KEY = "integration-key-" + uuid.uuid4().hex[:12]
OLD_API_KEY = "integration-old-key-" + uuid.uuid4().hex[:12]


def patch_status(ns: str, kind: str, name: str, status: dict[str, Any]) -> None:
    kubectl(
        "patch",
        kind,
        name,
        "-n",
        ns,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": status}),
    )


@contextmanager
def serving(server: ApiServer) -> Iterator[ApiServer]:
    """The API process started and healthy; stopped when the block ends."""
    server.start()
    try:
        server.wait_healthy()
        yield server
    finally:
        server.stop()


class ApiServer(Process):
    """``datapipelines-api`` serving one namespace on 127.0.0.1 and a free port (kept across
    restarts)."""

    def __init__(
        self,
        ns: str,
        *,
        history_dsn: str = "",
        key: str | None = None,
        kubeconfig: Path = KUBECONFIG,
        extra: dict[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            "DATAPIPELINES_API_HOST": "127.0.0.1",
            "DATAPIPELINES_API_PORT": str(self.port),
            "DATAPIPELINES_NAMESPACE": ns,
            "DATAPIPELINES_KUBECONFIG": str(kubeconfig),
            "DATAPIPELINES_WATCH_TIMEOUT_SECONDS": "60",
        }
        if key is not None:
            env["DATAPIPELINES_API_KEY"] = key
        if history_dsn:
            env["DATAPIPELINES_HISTORY_DSN"] = history_dsn
        env.update(extra or {})
        super().__init__("datapipelines-api", f"api-{ns}-{self.port}", env)

    def wait_healthy(self, ready: bool = True, timeout: float = 60) -> None:
        path = "/readyz" if ready else "/healthz"

        def check() -> bool:
            if not self.alive():
                raise AssertionError(f"API exited:\n{self.log_tail()}")
            try:
                return httpx.get(self.url + path, timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(check, f"API {path}", timeout=timeout)

    def client(self, key: str | None = API_KEY, timeout: float = 30) -> httpx.Client:
        headers = {"X-API-Key": key} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout)
