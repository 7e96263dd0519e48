"""Helpers of the operator's integration tests: the API client, the operator process, waits."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml

from datapipelines.operator.kube import Kube
from datapipelines.resources import (
    API_VERSION,
    BATCH_KIND,
    BATCH_PLURAL,
    CONNECTION_KIND,
    CONNECTION_PLURAL,
    RUN_KIND,
    RUN_PLURAL,
)

REPO_ROOT = Path(__file__).resolve().parents[3]
CRD_DIR = REPO_ROOT / "crds"
OPERATOR_BIN = Path(sys.executable).parent / "datapipelines-operator"
RUNNER_IMAGE = "localhost/datapipelines-runner:dev"
KUBE_API = "https://127.0.0.1:6443"

T = TypeVar("T")


async def wait_for(
    probe: Callable[[], Awaitable[T]], seconds: float = 60, interval: float = 0.5, what: str = ""
) -> T:
    """Call ``probe`` until it returns something truthy; fail with the last value."""
    deadline = time.monotonic() + seconds
    last: Any = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {seconds}s waiting for {what or probe}: last={last!r}")


async def apply_crds(kube: Kube) -> None:
    """Create or update the CRDs from crds/ and wait until they are Established."""
    base = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    names = []
    for path in sorted(CRD_DIR.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        name = crd["metadata"]["name"]
        names.append(name)
        existing = await kube.request("GET", f"{base}/{name}", tolerate_404=True)
        if existing is None:
            await kube.request("POST", base, body=crd)
        else:
            crd["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"]
            await kube.request("PUT", f"{base}/{name}", body=crd)

    async def established() -> bool:
        for name in names:
            crd = await kube.request("GET", f"{base}/{name}")
            conds = {
                c["type"]: c["status"] for c in (crd or {}).get("status", {}).get("conditions", [])
            }
            if conds.get("Established") != "True":
                return False
        return True

    await wait_for(established, 30, what="CRDs established")
    await asyncio.sleep(1)  # let discovery catch up


async def make_namespace(kube: Kube, prefix: str = "dp-op") -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    await kube.request(
        "POST",
        "/api/v1/namespaces",
        body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
    )
    # The runner's ServiceAccount and its namespace-scoped rights (docs/contracts.md).
    sa = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": "datapipelines-runner"},
    }
    await kube.request("POST", f"/api/v1/namespaces/{name}/serviceaccounts", body=sa)
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "datapipelines-runner"},
        "rules": [
            {"apiGroups": ["datapipelines.io"], "resources": ["pipelineruns"], "verbs": ["get"]},
            {
                "apiGroups": ["datapipelines.io"],
                "resources": ["pipelineruns/status"],
                "verbs": ["get", "patch"],
            },
        ],
    }
    rb = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "datapipelines-runner"},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": "datapipelines-runner",
        },
        "subjects": [{"kind": "ServiceAccount", "name": "datapipelines-runner", "namespace": name}],
    }
    rbac = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{name}"
    await kube.request("POST", f"{rbac}/roles", body=role)
    await kube.request("POST", f"{rbac}/rolebindings", body=rb)
    return name


async def delete_namespace(kube: Kube, name: str) -> None:
    await kube.request("DELETE", f"/api/v1/namespaces/{name}", tolerate_404=True)


class OperatorProcess:
    """``datapipelines-operator`` as a subprocess watching one namespace."""

    def __init__(self, kubeconfig: Path, namespace: str, log_dir: Path, **env: str) -> None:
        self.kubeconfig = kubeconfig
        self.namespace = namespace
        self.log_dir = log_dir
        self.env = env
        self.tag = env.get("POD_NAME", "operator")
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"operator-{self.tag}-{self.starts}.log"

    def start(self, **extra_env: str) -> OperatorProcess:
        self.starts += 1
        env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "DATAPIPELINES_NAMESPACE": self.namespace,
            "DATAPIPELINES_RUNNER_IMAGE": RUNNER_IMAGE,
            "DATAPIPELINES_RUNNER_IMAGE_PULL_POLICY": "Never",
            "DATAPIPELINES_RUNNER_HOST_NETWORK": "true",
            "DATAPIPELINES_KUBE_API": KUBE_API,
            "DATAPIPELINES_HEALTH_PORT": "0",
            "DATAPIPELINES_METRICS_PORT": "0",
            "DATAPIPELINES_LOG_FORMAT": "text",
            "DATAPIPELINES_SYNC_INTERVAL_SECONDS": "5",
            "DATAPIPELINES_SCHEDULE_INTERVAL_SECONDS": "3",
            "DATAPIPELINES_LEASE_DURATION_SECONDS": "6",
            "POD_NAME": f"test-{self.tag}-{self.starts}",
            **self.env,
            **extra_env,
        }
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [str(OPERATOR_BIN)], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=self.log_dir
            )
        return self

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, no Lease release (a crash)."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def logs(self) -> str:
        out = []
        for i in range(1, self.starts + 1):
            path = self.log_dir / f"operator-{self.tag}-{i}.log"
            if path.exists():
                text = path.read_text(errors="replace")
                out.append(f"--- operator {self.tag} start #{i} ---\n{text}")
        return "\n".join(out)


# ---------------------------------------------------------------------------- objects


def connection(name: str, *, url: str = "http://127.0.0.1:9/", **spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "type": "rest_api",
        "schemaName": "demo_data",
        "source": {
            "restApi": {
                "baseUrl": url,
                "resources": [
                    {
                        "name": "items",
                        "endpoint": {
                            "path": "items",
                            "params": {"page_size": 100},
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
        },
    }
    base.update(spec)
    return {
        "apiVersion": API_VERSION,
        "kind": CONNECTION_KIND,
        "metadata": {"name": name},
        "spec": base,
    }


def run(name: str, conn: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": RUN_KIND,
        "metadata": {"name": name},
        "spec": {"connectionName": conn, "trigger": "api", **spec},
    }


def batch(name: str, conns: list[str], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": BATCH_KIND,
        "metadata": {"name": name},
        "spec": {"connections": conns, **spec},
    }


class Cluster:
    """The test's view of one namespace."""

    def __init__(self, kube: Kube, namespace: str) -> None:
        self.kube = kube
        self.ns = namespace

    async def create(self, plural: str, body: dict[str, Any]) -> dict[str, Any]:
        created = await self.kube.create(self.ns, plural, body)
        assert created is not None
        return created

    async def connection(self, name: str, **spec: Any) -> dict[str, Any]:
        return await self.create(CONNECTION_PLURAL, connection(name, **spec))

    async def run(self, name: str, conn: str, **spec: Any) -> dict[str, Any]:
        return await self.create(RUN_PLURAL, run(name, conn, **spec))

    async def batch(self, name: str, conns: list[str], **spec: Any) -> dict[str, Any]:
        return await self.create(BATCH_PLURAL, batch(name, conns, **spec))

    async def get_run(self, name: str) -> dict[str, Any] | None:
        return await self.kube.get_run(self.ns, name)

    async def get_connection(self, name: str) -> dict[str, Any] | None:
        return await self.kube.get_connection(self.ns, name)

    async def get_batch(self, name: str) -> dict[str, Any] | None:
        return await self.kube.get_batch(self.ns, name)

    async def phase(self, name: str) -> str | None:
        run = await self.get_run(name)
        return ((run or {}).get("status") or {}).get("phase")

    async def wait_phase(self, name: str, *phases: str, seconds: float = 60) -> dict[str, Any]:
        async def probe() -> dict[str, Any] | None:
            run = await self.get_run(name)
            if run and (run.get("status") or {}).get("phase") in phases:
                return run
            return None

        return await wait_for(probe, seconds, what=f"run {name} in {phases}")

    async def cancel_run(self, name: str) -> None:
        await self.kube.patch(self.ns, RUN_PLURAL, name, {"spec": {"cancelRequested": True}})

    async def cancel_batch(self, name: str) -> None:
        await self.kube.patch(self.ns, BATCH_PLURAL, name, {"spec": {"cancelRequested": True}})

    async def job(self, name: str) -> dict[str, Any] | None:
        return await self.kube.get_job(self.ns, name)

    async def jobs(self) -> list[dict[str, Any]]:
        result = await self.kube.request("GET", f"/apis/batch/v1/namespaces/{self.ns}/jobs")
        return list((result or {}).get("items") or [])

    async def delete_job(self, name: str) -> None:
        await self.kube.delete_job(self.ns, name)

    async def runs(self) -> list[dict[str, Any]]:
        return await self.kube.list_objects(self.ns, RUN_PLURAL)

    async def events(self, name: str) -> list[dict[str, Any]]:
        result = await self.kube.request(
            "GET",
            f"/api/v1/namespaces/{self.ns}/events",
            query={"fieldSelector": f"involvedObject.name={name}"},
        )
        return list((result or {}).get("items") or [])
