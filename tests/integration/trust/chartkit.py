"""The chart's RBAC and admission policies applied to a test namespace, rendered by helm (never
copied into the tests): what a release in that namespace would install, minus the workloads."""

from __future__ import annotations

import json
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from tests.support.chart import render_chart
from tests.support.cluster import kubectl
from tests.support.waiting import wait_for

RELEASE = "trust"
#: The templates that hold identities and rights: no Deployments, CRDs or Secrets.
TEMPLATES = ("serviceaccounts.yaml", "runner.yaml", "rbac.yaml", "admission.yaml")


def render(
    namespace: str, *sets: str, templates: tuple[str, ...] = TEMPLATES
) -> list[dict[str, Any]]:
    """``helm template`` of the chart for a release in ``namespace``."""
    return render_chart(RELEASE, namespace, "crds.install=false", *sets, templates=templates)


@dataclass
class Release:
    namespace: str
    docs: list[dict[str, Any]]

    def sa(self, component: str) -> str:
        names = {
            "operator": f"{RELEASE}-datapipelines-operator",
            "api": f"{RELEASE}-datapipelines-api",
            "runner": "datapipelines-runner",
        }
        return f"system:serviceaccount:{self.namespace}:{names[component]}"


def _admission_last(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The docs in apply order: the admission policies and bindings last, the sandbox's two the
    very last (see wait_for_policies)."""

    def rank(doc: dict[str, Any]) -> tuple[int, int]:
        admission = doc["kind"].startswith("ValidatingAdmissionPolicy")
        return (int(admission), int(admission and "sandbox" in doc["metadata"]["name"]))

    return sorted(docs, key=rank)


def wait_for_policies(release: Release) -> None:
    """Admission policies take effect a moment after they are created: wait until the sandbox
    refuses a connection it must refuse (server-side dry run, nothing stored).

    The sandbox's policy and binding are created last (``_admission_last``), and the
    apiserver's admission plugin compiles its whole set of policies from two watches (policies,
    bindings) that deliver objects in creation order: when the sandbox is in force, every
    policy and binding created before it is in force too."""
    if not any(d["kind"] == "ValidatingAdmissionPolicy" for d in release.docs):
        return
    probe = {
        "apiVersion": "datapipelines.io/v1alpha1",
        "kind": "PipelineConnection",
        "metadata": {"name": "policy-probe", "namespace": release.namespace},
        "spec": {
            "type": "rest_api",
            "schemaName": "probe",
            "source": {"restApi": {"baseUrl": "http://127.0.0.1:9/", "resources": [{"name": "x"}]}},
            "runner": {"image": "not.allowed.example/probe:1"},
        },
    }
    with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
        json.dump(probe, f)
        f.flush()

        def refused() -> bool:
            proc = kubectl("create", "--dry-run=server", "-f", f.name, check=False)
            return proc.returncode != 0 and "is not allowed" in proc.stderr

        wait_for(refused, "the admission policies to take effect", timeout=60, every=0.5)


def apply(docs: list[dict[str, Any]]) -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
        json.dump({"apiVersion": "v1", "kind": "List", "items": docs}, f)
        f.flush()
        kubectl("apply", "--server-side", "--force-conflicts", "-f", f.name)


@contextmanager
def installed(prefix: str, *sets: str) -> Iterator[Release]:
    """A fresh namespace with the chart's identities, RBAC and admission policies; the
    cluster-scoped policies are removed again afterwards."""
    ns = f"{prefix}-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", ns)
    docs = render(ns, *sets)
    try:
        apply(_admission_last(docs))
        release = Release(ns, docs)
        wait_for_policies(release)
        yield release
    finally:
        for doc in docs:
            if doc["kind"].startswith("ValidatingAdmissionPolicy") or doc["kind"].startswith(
                "Cluster"
            ):
                kubectl("delete", doc["kind"], doc["metadata"]["name"], "--wait=false", check=False)
        kubectl("delete", "namespace", ns, "--wait=false", check=False)
