"""Session fixtures for the local single-node Kubernetes (hack/cluster.sh) and the images.

Tests never skip because the cluster is missing: the fixtures start it (and build what it needs)
or fail with the script's output.

- ``kubeconfig``: path of the admin kubeconfig; runs ``hack/cluster.sh up`` (idempotent: it
  returns at once when the cluster already runs and the node is Ready).
- ``images``: runs ``hack/images.sh`` (what ``make images`` runs) once per session: builds the
  base, app and runner images and imports them into the cluster's containerd.
- Markers: a test marked ``cluster`` gets the cluster started, one marked ``pods`` also gets the
  images built and imported, without having to name the fixtures.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.tools import REPO_ROOT, kubectl_binary

HACK = REPO_ROOT / "hack"
CLUSTER_SH = HACK / "cluster.sh"
IMAGES_SH = HACK / "images.sh"
STATE_DIR = REPO_ROOT / ".cluster"
KUBECONFIG = STATE_DIR / "kubeconfig"
API_SERVER = "https://127.0.0.1:6443"
NODE_NAME = "datapipelines-node"

BASE_IMAGE = "localhost/debian-python:bookworm"
APP_IMAGE = "localhost/datapipelines:dev"
RUNNER_IMAGE = "localhost/datapipelines-runner:dev"


@dataclass(frozen=True)
class Images:
    base: str = BASE_IMAGE
    app: str = APP_IMAGE
    runner: str = RUNNER_IMAGE


# what pytest_collection_finish already did successfully in this session
_prepared: set[str] = set()


def _script(args: list[str], timeout: float) -> tuple[int, str, float]:
    t0 = time.monotonic()
    proc = subprocess.run(
        args,
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )
    return proc.returncode, proc.stdout, time.monotonic() - t0


def _run(args: list[str], what: str, timeout: float) -> None:
    """Run a hack/ script, its output going to the test log; fail (never skip) on error."""
    rc, out, took = _script(args, timeout)
    print(out)
    if rc != 0:
        pytest.fail(f"{what} failed (exit {rc}):\n{out[-6000:]}", False)
    print(f"{what}: {took:.1f} s")


def ensure_cluster() -> Path:
    """Start the local cluster unless it already runs; return the admin kubeconfig path."""
    # a cold start may build Kubernetes from source first (~12 min on 2 cores)
    _run([str(CLUSTER_SH), "up"], "hack/cluster.sh up", timeout=3 * 3600)
    assert KUBECONFIG.is_file(), f"{KUBECONFIG} missing after hack/cluster.sh up"
    return KUBECONFIG


def ensure_images() -> Images:
    """Build the images (layer-cached) and import them into the cluster's containerd."""
    if "images" not in _prepared:
        _run([str(IMAGES_SH)], "hack/images.sh", timeout=3600)
    return Images()


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start the cluster (and build the images) before the first test when any collected test
    needs them, so the slow cold start (binaries, base image) counts against no test's timeout.
    A failure here is only reported: the fixtures run the scripts again and fail the tests."""
    if session.config.option.collectonly:
        return
    markers = {m.name for item in session.items for m in item.iter_markers()}
    steps: list[tuple[str, Callable[[], object]]] = []
    if markers & {"cluster", "pods"}:
        steps.append(("cluster", ensure_cluster))
    if "pods" in markers:
        steps.append(("images", ensure_images))
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    for name, step in steps:
        t0 = time.monotonic()
        try:
            step()
        except (Exception, pytest.fail.Exception) as exc:
            if reporter is not None:
                reporter.write_line(f"local {name}: FAILED before the tests: {str(exc)[-3000:]}")
            return
        _prepared.add(name)
        if reporter is not None:
            reporter.write_line(f"local {name}: ready in {time.monotonic() - t0:.0f} s")


def kubectl(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run the locally built kubectl against the local cluster (never /usr/bin/kubectl)."""
    return subprocess.run(
        [str(kubectl_binary()), "--kubeconfig", str(KUBECONFIG), *args],
        capture_output=True,
        text=True,
        check=check,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def kubeconfig() -> Path:
    return ensure_cluster()


@pytest.fixture(scope="session")
def images(kubeconfig: Path) -> Images:
    return ensure_images()


@pytest.fixture(autouse=True)
def _cluster_markers(request: pytest.FixtureRequest) -> None:
    """`cluster` → the cluster runs; `pods` → the images are built and imported as well."""
    if request.node.get_closest_marker("pods") is not None:
        request.getfixturevalue("images")
    elif request.node.get_closest_marker("cluster") is not None:
        request.getfixturevalue("kubeconfig")
