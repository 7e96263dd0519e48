"""The Helm chart rendered by the real `helm` (never copied into the tests)."""

from __future__ import annotations

import subprocess
from typing import Any

import yaml

from tests.support.tools import REPO_ROOT, helm_binary

CHART = REPO_ROOT / "deploy" / "helm" / "datapipelines"


def render_chart(
    release: str, namespace: str, *sets: str, templates: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    """``helm template`` of the chart for ``release`` in ``namespace``: only ``templates``
    (file names under templates/) when given, with ``--set`` items ``sets``."""
    args = [str(helm_binary()), "template", release, str(CHART), "--namespace", namespace]
    for template in templates:
        args += ["--show-only", f"templates/{template}"]
    for item in sets:
        args += ["--set", item]
    out = subprocess.run(args, capture_output=True, text=True, check=True, timeout=60).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]
