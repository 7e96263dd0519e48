"""Every value combination of the chart accepted by the real apiserver: a server-side dry run
of what `helm template` renders (the schema, admission and defaulting of each object; nothing
is created). ServiceMonitors are left out: the cluster has no Prometheus operator CRDs."""

from __future__ import annotations

import copy
import subprocess
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import yaml

from tests.chart.test_chart_values import COMBINATIONS, rendered_combinations
from tests.support.cluster import KUBECONFIG, kubectl
from tests.support.kube import create_namespace, delete_namespace
from tests.support.tools import REPO_ROOT, kubectl_binary

pytestmark = [pytest.mark.cluster]


@pytest.fixture(scope="module")
def namespace(crds: None) -> str:
    ns = create_namespace("dp-chart")
    yield ns  # type: ignore[misc]
    delete_namespace(ns)
    for other in sorted(CREATED):
        delete_namespace(other)


CREATED: set[str] = set()
CLUSTER_SCOPED = {
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleBinding",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "Namespace",
    "PersistentVolume",
    "PriorityClass",
    "StorageClass",
    "IngressClass",
}


def ensure_namespaces(docs: list[dict[str, Any]]) -> None:
    """Namespaces the chart names itself (the served ones of cluster-wide and watch-list
    installs) exist, as the installing administrator would have made them."""
    for ns in {d["metadata"].get("namespace") for d in docs} - {None} - CREATED:
        done = kubectl("get", "namespace", ns, check=False)
        if done.returncode != 0:
            kubectl("create", "namespace", ns)
            CREATED.add(ns)


def rendered(name: str, namespace: str) -> list[dict[str, Any]]:
    docs = [
        d for d in copy.deepcopy(rendered_combinations()[name]) if d["kind"] != "ServiceMonitor"
    ]
    assert docs
    for doc in docs:  # what helm install -n would put them in
        if doc["kind"] not in CLUSTER_SCOPED:
            doc["metadata"].setdefault("namespace", namespace)
    return docs


def dry_run(name: str, docs: list[dict[str, Any]]) -> str | None:
    """The apiserver's objection to combination `name`, None when it accepts every object."""
    done = subprocess.run(
        [str(kubectl_binary()), "--kubeconfig", str(KUBECONFIG), "apply",
         "--dry-run=server", "--server-side", "--force-conflicts", "--field-manager=chart-test",
         "-f", "-"],
        input=yaml.safe_dump_all(docs),
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    return None if done.returncode == 0 else f"{name}: {done.stderr}"


def test_the_apiserver_accepts_every_combination(namespace: str) -> None:
    names = sorted(COMBINATIONS)
    with ThreadPoolExecutor(4) as pool:  # helm's and kubectl's start-up, side by side
        docs = list(pool.map(lambda n: rendered(n, namespace), names))
        for each in docs:
            ensure_namespaces(each)
        objections = [o for o in pool.map(dry_run, names, docs) if o]
    assert not objections, "\n".join(objections)


def test_the_kind_samples_are_valid_objects(namespace: str) -> None:
    """deploy/samples/kind/ (the README's quick start on a cluster with pod networking): every
    object accepted by the apiserver, with no host networking and the source reached by DNS."""
    path = REPO_ROOT / "deploy" / "samples" / "kind" / "demo.yaml"
    docs = list(yaml.safe_load_all(path.read_text()))
    for doc in docs:
        pod = doc.get("spec", {}).get("template", {}).get("spec", {})
        assert not pod.get("hostNetwork"), doc["metadata"]["name"]
    (conn,) = [d for d in docs if d["kind"] == "PipelineConnection"]
    assert conn["spec"]["source"]["restApi"]["baseUrl"] == "http://demo-source:8765/"
    done = subprocess.run(
        [str(kubectl_binary()), "--kubeconfig", str(KUBECONFIG), "apply", "-n", namespace,
         "--dry-run=server", "-f", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
