"""The Helm chart rendered by the real `helm` (never copied into the tests)."""

from __future__ import annotations

import subprocess
from functools import cache
from typing import Any

import yaml

from tests.support.cluster import APP_IMAGE, RUNNER_IMAGE
from tests.support.tools import HACK, REPO_ROOT, helm_binary

CHART = REPO_ROOT / "deploy" / "helm" / "datapipelines"

#: ``--set`` values that point a release at the locally built images (hack/images.sh,
#: tests.support.cluster): the chart's image tags default to its appVersion, the local builds
#: are tagged ``dev``. Every local install (tests/support/release.py, hack/demo.sh) sets them.
LOCAL_IMAGE_VALUES = (
    f"image.repository={APP_IMAGE.rpartition(':')[0]}",
    f"image.tag={APP_IMAGE.rpartition(':')[2]}",
    f"runner.image.repository={RUNNER_IMAGE.rpartition(':')[0]}",
    f"runner.image.tag={RUNNER_IMAGE.rpartition(':')[2]}",
)


class StrictLoader(yaml.SafeLoader):
    """Refuses a mapping that holds a key twice (yamllint and go-yaml v3 do; PyYAML's safe
    loader keeps the last value silently)."""


def _no_duplicates(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    keys = [loader.construct_object(k, deep=deep) for k, _ in node.value]
    twice = {k for k in keys if keys.count(k) > 1}
    if twice:
        raise yaml.constructor.ConstructorError(
            None, None, f"duplicate keys {twice}", node.start_mark
        )
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)


def load_strict(text: str) -> list[dict[str, Any]]:
    """The documents of a multi-document YAML stream (empty ones dropped), parsed strictly."""
    return [doc for doc in yaml.load_all(text, Loader=StrictLoader) if doc]


@cache
def kube_version() -> str:
    """The Kubernetes version ``helm template`` and ``helm lint`` render for: the local
    cluster's (hack/versions.sh KUBE_VERSION). Without it helm assumes an old default that the
    chart's kubeVersion (>= 1.30, for the admission policies) refuses."""
    script = f'source "{HACK}/versions.sh"; echo "$KUBE_VERSION"'
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def template_command(release: str, namespace: str, *args: str) -> list[str]:
    """The ``helm template`` command line of the chart for ``release`` in ``namespace``, at the
    local cluster's Kubernetes version, with more ``args``."""
    return [
        str(helm_binary()),
        "template",
        release,
        str(CHART),
        "--namespace",
        namespace,
        "--kube-version",
        kube_version(),
        *args,
    ]


def render_chart(
    release: str, namespace: str, *sets: str, templates: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    """``helm template`` of the chart for ``release`` in ``namespace``: only ``templates``
    (file names under templates/) when given, with ``--set`` items ``sets``; parsed strictly
    (a key written twice in a mapping is an error)."""
    args: list[str] = []
    for template in templates:
        args += ["--show-only", f"templates/{template}"]
    for item in sets:
        args += ["--set", item]
    out = subprocess.run(
        template_command(release, namespace, *args),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return load_strict(out)
