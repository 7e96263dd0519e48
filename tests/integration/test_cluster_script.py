"""hack/cluster.sh itself: idempotent `up`, a truthful `status`."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from tests.support.cluster import CLUSTER_SH, REPO_ROOT, kubectl

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]


def test_second_up_finds_the_running_cluster(kubeconfig: Path) -> None:
    t0 = time.monotonic()
    out = subprocess.run(
        [str(CLUSTER_SH), "up"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert "already up" in out.stderr
    assert time.monotonic() - t0 < 30


def test_status_lists_every_component_running(kubeconfig: Path) -> None:
    out = subprocess.run(
        [str(CLUSTER_SH), "status"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stdout + out.stderr
    for component in (
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "containerd",
        "kubelet",
    ):
        assert f"{component}" in out.stdout
    assert "NOT running" not in out.stdout


def test_admin_kubeconfig_is_cluster_admin_over_tls(kubeconfig: Path) -> None:
    version = kubectl("version", "-o", "json").stdout
    assert '"gitVersion": "v1.33.' in version
    assert kubectl("auth", "can-i", "*", "*").stdout.strip() == "yes"
    # anonymous requests are refused by RBAC (the API server listens with TLS only)
    anon = subprocess.run(
        [
            "curl",
            "-sk",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "https://127.0.0.1:6443/api/v1/nodes",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert anon.stdout in ("401", "403")
