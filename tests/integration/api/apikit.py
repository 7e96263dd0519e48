"""Helpers of the API's integration tests: the API and the operator as real processes,
namespaces with the runner's RBAC, and kubectl on the local cluster (tests/support/cluster.py).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx

from tests.support.cluster import API_SERVER, KUBECONFIG, kubectl
from tests.support.tools import REPO_ROOT

T = TypeVar("T")
BIN = Path(sys.executable).parent
API_KEY = "integration-key-" + uuid.uuid4().hex[:12]
OLD_API_KEY = "integration-old-key-" + uuid.uuid4().hex[:12]
LOG_DIR = REPO_ROOT / ".cluster" / "test-logs"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(fn: Callable[[], T | None], what: str, timeout: float = 60, every: float = 0.3) -> T:
    """Poll `fn` until it returns something truthy (tests only; the API itself never polls)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = fn()
        except Exception as exc:  # keep trying; report the last error
            last = exc
        else:
            if last:
                return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


def kubectl_apply(obj: dict[str, Any] | list[dict[str, Any]]) -> None:
    items = obj if isinstance(obj, list) else [obj]
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump({"apiVersion": "v1", "kind": "List", "items": items}, f)
    try:
        kubectl("apply", "--server-side", "--force-conflicts", "-f", f.name)
    finally:
        os.unlink(f.name)


def kubectl_json(*args: str) -> Any:
    return json.loads(kubectl(*args, "-o", "json").stdout)


def get_obj(ns: str, kind: str, name: str) -> dict[str, Any] | None:
    proc = kubectl("get", kind, name, "-n", ns, "-o", "json", check=False)
    if proc.returncode != 0:
        return None
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


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


def apply_crds() -> None:
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO_ROOT / "crds"))
    for crd in ("pipelineconnections", "pipelineruns", "pipelinebatches"):
        kubectl(
            "wait", "--for=condition=Established", f"crd/{crd}.datapipelines.io", "--timeout=60s"
        )


def create_namespace(prefix: str) -> str:
    ns = f"{prefix}-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", ns)
    # The runner's ServiceAccount and rights (as the chart's rbac.yaml gives them).
    kubectl_apply(
        [
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": "datapipelines-runner", "namespace": ns},
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": {"name": "datapipelines-runner", "namespace": ns},
                "rules": [
                    {
                        "apiGroups": ["datapipelines.io"],
                        "resources": ["pipelineruns"],
                        "verbs": ["get"],
                    },
                    {
                        "apiGroups": ["datapipelines.io"],
                        "resources": ["pipelineruns/status"],
                        "verbs": ["get", "patch"],
                    },
                ],
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": "datapipelines-runner", "namespace": ns},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Role",
                    "name": "datapipelines-runner",
                },
                "subjects": [
                    {"kind": "ServiceAccount", "name": "datapipelines-runner", "namespace": ns}
                ],
            },
        ]
    )
    wait_for(
        lambda: kubectl("get", "serviceaccount", "default", "-n", ns, check=False).returncode == 0,
        "the namespace's default ServiceAccount",
    )
    return ns


def delete_namespace(ns: str) -> None:
    kubectl("delete", "namespace", ns, "--wait=false", check=False)


def connection(name: str, ns: str, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "rest_api",
        "enabled": True,
        "schemaName": name.replace("-", "_"),
        "concurrencyPolicy": "Forbid",
        "retries": 0,
        "timeoutSeconds": 300,
        "source": {
            "restApi": {
                "baseUrl": "http://127.0.0.1:9/",
                "resources": [{"name": "items", "endpoint": {"path": "items"}}],
            }
        },
        "destination": {
            "type": "duckdb",
            "duckdb": {"path": f"/var/lib/datapipelines/duckdb/{name}.duckdb"},
        },
    }
    body.update(spec)
    return {
        "apiVersion": "datapipelines.io/v1alpha1",
        "kind": "PipelineConnection",
        "metadata": {"name": name, "namespace": ns},
        "spec": body,
    }


def demo_source_spec(url: str, page_size: int = 100) -> dict[str, Any]:
    """A rest_api source reading the demo HTTP source (tests/support/http_source.py)."""
    return {
        "restApi": {
            "baseUrl": url,
            "resources": [
                {
                    "name": "items",
                    "endpoint": {
                        "path": "items",
                        "params": {"page_size": page_size},
                        "paginator": {
                            "type": "page_number",
                            "base_page": 1,
                            "total_path": "total_pages",
                        },
                    },
                    "primary_key": "id",
                }
            ],
        }
    }


class Process:
    """A console script of this project run as a child process, its output in a log file."""

    def __init__(self, script: str, env: dict[str, str], name: str) -> None:
        self.script, self.env, self.name = script, env, name
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self.log_path = LOG_DIR / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("DATAPIPELINES_", "KUBECONFIG"))
        }
        env.update(self.env)
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(
            [str(BIN / self.script)], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()

    def stop(self, kill: bool = False) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        if kill:
            self.proc.kill()
        else:
            self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


class ApiServer(Process):
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
        super().__init__("datapipelines-api", env, f"api-{ns}-{self.port}")

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


class Operator(Process):
    def __init__(self, ns: str, *, history_dsn: str = "") -> None:
        env = {
            "DATAPIPELINES_NAMESPACE": ns,
            "DATAPIPELINES_KUBECONFIG": str(KUBECONFIG),
            # kubernetes_asyncio reads KUBECONFIG at import time: kopf's login needs it set.
            "KUBECONFIG": str(KUBECONFIG),
            "DATAPIPELINES_RUNNER_IMAGE_PULL_POLICY": "Never",
            "DATAPIPELINES_RUNNER_HOST_NETWORK": "true",
            "DATAPIPELINES_KUBE_API": API_SERVER,
            "DATAPIPELINES_METRICS_PORT": "0",
            "DATAPIPELINES_HEALTH_PORT": "0",
            "DATAPIPELINES_LEASE_NAME": f"datapipelines-operator-{ns}",
            "DATAPIPELINES_SYNC_INTERVAL_SECONDS": "5",
            "DATAPIPELINES_LOG_FORMAT": "text",
        }
        if history_dsn:
            env["DATAPIPELINES_HISTORY_DSN"] = history_dsn
        super().__init__("datapipelines-operator", env, f"operator-{ns}")
