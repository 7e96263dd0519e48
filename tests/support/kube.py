"""The local cluster through kubectl (tests/support/cluster.py): objects applied and read, the
CRDs of crds/, and test namespaces holding the runner's ServiceAccount and rights.

    def test_x(crds):                         # the CRDs applied and Established (session)
        ns = create_namespace("mine")          # mine-<random>, ready for runner pods
        kubectl_apply(connection("c", ns))
        ...
        delete_namespace(ns)
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.support.chart import render_chart
from tests.support.cluster import kubectl
from tests.support.tools import REPO_ROOT
from tests.support.waiting import wait_for

CRD_DIR = REPO_ROOT / "crds"
RUNNER_SA = "datapipelines-runner"


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


def apply_crds() -> None:
    """Create or update the CRDs from crds/ and wait until they are Established."""
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD_DIR))
    for crd in ("pipelineconnections", "pipelineruns", "pipelinebatches"):
        kubectl(
            "wait", "--for=condition=Established", f"crd/{crd}.datapipelines.io", "--timeout=60s"
        )


@pytest.fixture(scope="session")
def crds(kubeconfig: Path) -> None:
    apply_crds()


def create_namespace(prefix: str) -> str:
    """A new namespace `<prefix>-<random>` where pods may be created at once."""
    ns = f"{prefix}-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", ns)
    # The runner's ServiceAccount and rights, as the chart renders them for a namespace that
    # holds connections (templates/runner.yaml).
    kubectl_apply(render_chart("test", ns, templates=("runner.yaml",)))
    # the ServiceAccount admission refuses pods until the controller made `default`
    wait_for(
        lambda: kubectl("get", "serviceaccount", "default", "-n", ns, check=False).returncode == 0,
        "the namespace's default ServiceAccount",
    )
    return ns


def delete_namespace(ns: str) -> None:
    kubectl("delete", "namespace", ns, "--wait=false", check=False)


def scratch_duckdb(name: str) -> dict[str, Any]:
    """A DuckDB destination on the pod's scratch space (lost with the pod, on purpose)."""
    return {
        "type": "duckdb",
        "duckdb": {"path": f"/var/lib/datapipelines/duckdb/{name}.duckdb", "ephemeral": True},
    }


def connection(name: str, ns: str, **spec: Any) -> dict[str, Any]:
    """A PipelineConnection manifest: an enabled rest_api → DuckDB connection (its source
    unreachable unless `source` is given), Forbid, no retries; `spec` overrides fields."""
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
        "destination": scratch_duckdb(name),
    }
    body.update(spec)
    return {
        "apiVersion": "datapipelines.io/v1alpha1",
        "kind": "PipelineConnection",
        "metadata": {"name": name, "namespace": ns},
        "spec": body,
    }
