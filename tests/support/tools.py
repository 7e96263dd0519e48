"""Paths of the locally built tools (hack/build-binaries.sh): built on demand, never skipped."""

from __future__ import annotations

import os
import subprocess
from functools import cache
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
HACK = REPO_ROOT / "hack"


@cache
def pinned_dirs() -> dict[str, Path]:
    """KUBE_BIN, ETCD_BIN, HELM_BIN and KWOK_BIN as hack/versions.sh computes them."""
    names = {"kubernetes": "KUBE_BIN", "etcd": "ETCD_BIN", "helm": "HELM_BIN", "kwok": "KWOK_BIN"}
    script = f'source "{HACK}/versions.sh"; ' + "; ".join(f'echo "${v}"' for v in names.values())
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True)
    lines = out.stdout.splitlines()
    return {component: Path(line) for component, line in zip(names, lines, strict=True)}


def ensure_built(component: str, binary: str) -> Path:
    """The cached binary, building it (hack/build-binaries.sh COMPONENT) when it is missing."""
    path = pinned_dirs()[component] / binary
    if not os.access(path, os.X_OK):
        subprocess.run([str(HACK / "build-binaries.sh"), component], check=True)
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"{path} is still missing after hack/build-binaries.sh {component}")
    return path


def helm_binary() -> Path:
    return ensure_built("helm", "helm")


def kubectl_binary() -> Path:
    return ensure_built("kubernetes", "kubectl")


def kwok_binary() -> Path:
    """kwok (sigs.k8s.io/kwok), the fake-node controller hack/kwok.sh runs."""
    return ensure_built("kwok", "kwok")
