"""What each ServiceAccount of the chart may do, asked of the apiserver (`kubectl auth can-i`):
no Secret reads beyond what is mounted, no pods/exec, no escalate/impersonate, no bind but the
operator's of the token-rotating runner's Role, nothing cluster-wide in single-namespace mode."""

from __future__ import annotations

import pytest

from tests.integration.trust.chartkit import Release
from tests.support.cluster import kubectl

pytestmark = pytest.mark.cluster

NEVER = [
    ("get", "secrets"),
    ("list", "secrets"),
    ("watch", "secrets"),
    ("create", "pods/exec"),
    ("create", "pods"),
    ("create", "serviceaccounts/token"),
    ("escalate", "roles"),
    ("bind", "roles"),
    ("bind", "clusterroles"),
    ("create", "clusterrolebindings"),
    ("impersonate", "serviceaccounts"),
    ("update", "pipelineconnections"),
    ("delete", "pipelineconnections"),
]

#: What each component must be able to do (its job), in its namespace.
MUST = {
    "operator": [
        ("watch", "pipelineconnections"),
        ("patch", "pipelineconnections/status"),
        ("create", "pipelineruns"),
        ("delete", "pipelineruns"),
        ("patch", "pipelineruns/status"),
        ("create", "jobs"),
        ("delete", "jobs"),
        ("watch", "pods"),
        ("create", "events"),
        ("list", "events"),  # once, for a pod that did not start in time
        ("update", "leases"),
        # a token-rotating connection's runner identity (dp-oauth2-<connection>)
        ("create", "serviceaccounts"),
        ("create", "rolebindings"),
    ],
    "api": [
        ("watch", "pipelineconnections"),
        ("create", "pipelineruns"),
        ("patch", "pipelineruns"),
        ("create", "pipelinebatches"),
        ("get", "jobs"),
        ("delete", "jobs"),
        ("get", "pods/log"),
    ],
    "runner": [("patch", "pipelineruns/status")],
}
#: What each component must NOT be able to do, beyond NEVER.
MUST_NOT = {
    "operator": [
        ("get", "pods/log"),
        ("update", "pipelineruns"),
        ("get", "configmaps"),
        ("patch", "secrets"),
        ("delete", "serviceaccounts"),
        ("update", "rolebindings"),
    ],
    "api": [
        ("patch", "pipelineruns/status"),
        ("list", "jobs"),
        ("delete", "pipelineruns"),
        ("create", "rolebindings"),
        ("patch", "secrets"),
    ],
    "runner": [
        ("patch", "secrets"),
        ("create", "rolebindings"),
        ("get", "pipelineruns"),
        ("patch", "pipelineruns"),
        ("get", "jobs"),
        ("get", "pods"),
    ],
}


def can(release: Release, component: str, verb: str, what: str, namespace: str) -> bool:
    """``what`` is a resource or resource/subresource (``pipelineruns/status``)."""
    resource, _, sub = what.partition("/")
    args = ["auth", "can-i", verb, resource, "-n", namespace, f"--as={release.sa(component)}"]
    if sub:
        args.append(f"--subresource={sub}")
    return kubectl(*args, check=False).stdout.strip() == "yes"


@pytest.mark.parametrize("component", ["operator", "api", "runner"])
def test_what_each_component_may_do(release: Release, component: str) -> None:
    ns = release.namespace
    denied = [(v, w) for v, w in MUST[component] if not can(release, component, v, w, ns)]
    assert not denied, f"{component} lacks rights it needs: {denied}"
    granted = [(v, w) for v, w in NEVER + MUST_NOT[component] if can(release, component, v, w, ns)]
    assert not granted, f"{component} has rights it must not: {granted}"


def test_the_operator_may_bind_only_the_token_rotating_runners_role(release: Release) -> None:
    """It creates dp-oauth2-<connection> RoleBindings: to that one Role and no other."""
    ns, operator = release.namespace, release.sa("operator")

    def may_bind(role: str) -> bool:
        proc = kubectl(
            "auth", "can-i", "bind", f"roles/{role}", "-n", ns, f"--as={operator}", check=False
        )
        return proc.stdout.strip() == "yes"

    assert may_bind("trust-datapipelines-runner-oauth2")
    assert not may_bind("trust-datapipelines-operator") and not may_bind("admin")


@pytest.mark.parametrize("component", ["operator", "api", "runner"])
def test_nothing_cluster_wide_in_single_namespace_mode(release: Release, component: str) -> None:
    elsewhere = "default"
    for verb, what in [*MUST[component], ("list", "namespaces"), ("list", "nodes")]:
        assert not can(release, component, verb, what, elsewhere), (component, verb, what)
    listed = kubectl("auth", "can-i", "--list", "-n", elsewhere, f"--as={release.sa(component)}")
    ours = [
        line for line in listed.stdout.splitlines() if "datapipelines.io" in line or "batch" in line
    ]
    assert not ours, ours
