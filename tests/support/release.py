"""The Helm chart installed on the local cluster in a namespace of its own, for end-to-end tests.

    release = install_release("e2e-clients")     # operator + API pods, API on a free host port
    release.url, release.key                      # http://127.0.0.1:<port>, the generated key
    uninstall_release(release)

Like tests/e2e/test_chart_e2e.py: cluster-wide CRDs come from the `crds` fixture, pods use the
host network (nothing leaves loopback) and the locally built images.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

from datapipelines.resources.podcontract import RUNNER_UID
from tests.support.chart import LOCAL_IMAGE_VALUES
from tests.support.cluster import API_SERVER, KUBECONFIG, STATE_DIR, kubectl
from tests.support.kube import delete_namespace
from tests.support.processes import free_port
from tests.support.tools import REPO_ROOT, helm_binary

CHART = REPO_ROOT / "deploy" / "helm" / "datapipelines"
RELEASE = "dp"


@dataclass(frozen=True)
class Release:
    ns: str
    port: int
    key: str
    sets: tuple[str, ...] = ()
    """The ``--set`` arguments it was installed with (for an upgrade with the same values)."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def helm(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    cmd = [str(helm_binary()), "--kubeconfig", str(KUBECONFIG), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"helm {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
    return proc


#: Node directory of the test releases' warehouse volumes (<dir>/<namespace>).
WAREHOUSE_HOST_DIR = STATE_DIR / "test-warehouse"


def warehouse_dir(ns: str) -> Path:
    """The warehouse volume of namespace ``ns`` on this (the only) node, writable by the
    runner's uid like a provisioned volume would be."""
    path = WAREHOUSE_HOST_DIR / ns
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, RUNNER_UID, RUNNER_UID)
    return path


def install_release(prefix: str, *extra: str) -> Release:
    ns = f"{prefix}-{uuid.uuid4().hex[:6]}"
    api_port = free_port()
    warehouse_dir(ns)
    values = [
        "crds.install=false",
        "hostNetwork=true",
        f"kubeApiServer={API_SERVER}",
        f"api.port={api_port}",
        f"operator.healthPort={free_port()}",
        f"operator.metricsPort={free_port()}",
        f"warehouse.persistence.hostPath={WAREHOUSE_HOST_DIR}",
        "logFormat=text",
        *LOCAL_IMAGE_VALUES,  # the chart defaults to its appVersion's tag; ours are built as dev
        *extra,
    ]
    sets = [arg for value in values for arg in ("--set", value)]
    helm(
        "upgrade",
        "--install",
        RELEASE,
        str(CHART),
        "-n",
        ns,
        "--create-namespace",
        *sets,
        "--wait",
        "--timeout",
        "4m",
    )
    secret = kubectl(
        "get",
        "secret",
        f"{RELEASE}-datapipelines-api-key",
        "-n",
        ns,
        "-o",
        "jsonpath={.data.api-key}",
    ).stdout
    key = base64.b64decode(secret).decode()
    return Release(ns=ns, port=api_port, key=key, sets=tuple(sets))


def uninstall_release(release: Release) -> None:
    subprocess.run(
        [
            str(helm_binary()),
            "--kubeconfig",
            str(KUBECONFIG),
            "uninstall",
            RELEASE,
            "-n",
            release.ns,
            "--wait",
            "--timeout",
            "2m",
        ],
        capture_output=True,
        timeout=180,
    )
    delete_namespace(release.ns)
    # the warehouse is kept on uninstall (it holds the data): a test removes its own
    kubectl(
        "delete",
        "pv",
        f"{RELEASE}-datapipelines-warehouse-{release.ns}",
        "--wait=false",
        check=False,
    )
    shutil.rmtree(WAREHOUSE_HOST_DIR / release.ns, ignore_errors=True)
