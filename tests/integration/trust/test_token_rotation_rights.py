"""A token-rotating connection's runner (ServiceAccount dp-oauth2-<connection>, made by the
operator) may change only the refresh_token of the Secret annotated for its own connection —
enforced by the apiserver (the chart's RBAC and the runner-oauth2-secret policy), tested with
real bound tokens of real pod objects, sending the runner's own JSON patch."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from datapipelines.operator.config import Settings
from datapipelines.operator.jobs import oauth2_identity
from datapipelines.resources.oauth2 import CONNECTION_ANNOTATION, runner_account
from tests.integration.trust.chartkit import RELEASE, Release
from tests.integration.trust.test_runner_identity import CA, bound_token, pod_of, run_manifest
from tests.support.cluster import API_SERVER
from tests.support.kube import kubectl_apply, kubectl_json
from tests.support.waiting import wait_for

pytestmark = pytest.mark.cluster

OLD, NEW = "refresh-old", "refresh-new"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def token_secret(name: str, ns: str, connection: str | None) -> dict[str, Any]:
    annotations = {CONNECTION_ANNOTATION: connection} if connection else {}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": ns, "annotations": annotations},
        "data": {"client_id": b64("id"), "client_secret": b64("secret"), "refresh_token": b64(OLD)},
    }


def xero_connection(name: str, ns: str, secret: str) -> dict[str, Any]:
    return {
        "apiVersion": "datapipelines.io/v1alpha1",
        "kind": "PipelineConnection",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"type": "xero", "schemaName": "books", "source": {"xero": {"secretName": secret}}},
    }


@pytest.fixture(scope="module")
def rotation(release: Release) -> Iterator[dict[str, Any]]:
    """Connections a and b with their runner identities (rendered by the operator's own code),
    a run of a with a pod running as a's identity, and three Secrets."""
    ns = release.namespace
    settings = Settings(runner_oauth2_role=f"{RELEASE}-datapipelines-runner-oauth2")
    for conn in ("a", "b"):  # the owners of the identities (else the GC removes them)
        kubectl_apply(xero_connection(conn, ns, f"token-{conn}"))
        uid = kubectl_json("get", "pconn", conn, "-n", ns)["metadata"]["uid"]
        kubectl_apply(list(oauth2_identity(conn, ns, uid, settings)))
    kubectl_apply(
        [
            token_secret("token-a", ns, "a"),
            token_secret("token-b", ns, "b"),
            token_secret("plain", ns, None),
            run_manifest("a-run01", ns),
        ]
    )
    pod = pod_of("a-run01", ns)
    pod["spec"]["serviceAccountName"] = runner_account("a")
    kubectl_apply(pod)
    wait_for(lambda: kubectl_json("get", "sa", runner_account("a"), "-n", ns), "a's runner SA")
    generic = pod_of("a-run01", ns)  # the same run's pod under the generic runner identity
    kubectl_apply(generic)
    yield {
        "ns": ns,
        "token": bound_token(ns, pod, runner_account("a")),
        "generic": bound_token(ns, generic),
    }


def patch(
    ns: str, secret: str, token: str, ops: list[dict[str, Any]], dry_run: bool = False
) -> httpx.Response:
    url = f"{API_SERVER}/api/v1/namespaces/{ns}/secrets/{secret}"
    return httpx.patch(
        url + ("?dryRun=All" if dry_run else ""),
        content=json.dumps(ops),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json-patch+json"},
        verify=str(CA),
        timeout=30,
    )


def rotate(
    old: str = OLD, new: str = NEW, run: str = "a-run01", key: str = "refresh_token"
) -> list:
    return [
        {"op": "test", "path": f"/data/{key}", "value": b64(old)},
        {"op": "replace", "path": f"/data/{key}", "value": b64(new)},
        {"op": "add", "path": "/metadata/annotations/datapipelines.io~1oauth2-rotated-by-run",
         "value": run},
    ]  # fmt: skip


def stored(ns: str, secret: str, key: str = "refresh_token") -> str:
    return base64.b64decode(kubectl_json("get", "secret", secret, "-n", ns)["data"][key]).decode()


def test_the_runner_rotates_its_own_connections_token_with_a_compare_and_swap(
    rotation: dict[str, Any],
) -> None:
    ns, token = rotation["ns"], rotation["token"]
    dry = patch(ns, "token-a", token, rotate(OLD, OLD), dry_run=True)
    assert dry.status_code == 200, dry.text
    assert stored(ns, "token-a") == OLD
    ok = patch(ns, "token-a", token, rotate())
    assert ok.status_code == 200, ok.text
    assert stored(ns, "token-a") == NEW
    again = patch(ns, "token-a", token, rotate())  # the old token is no longer there: refused
    assert again.status_code == 422, again.text
    assert stored(ns, "token-a") == NEW


@pytest.mark.parametrize(
    ("secret", "ops", "said"),
    [
        ("token-b", rotate(), "may write only a Secret annotated"),
        ("plain", rotate()[:2], "may write only a Secret annotated"),  # no annotations to add to
        ("token-a", rotate("secret", "mine", key="client_secret"), "only the refresh_token"),
        ("token-a", rotate(NEW, "x", run="a-other"), "may note only its own run"),
        (
            "token-a",
            [
                {
                    "op": "add",
                    "path": "/metadata/annotations/datapipelines.io~1oauth2-connection",
                    "value": "b",
                },
                *rotate(NEW, NEW),
            ],
            "labels, other",
        ),
        (
            "token-a",
            [{"op": "add", "path": "/metadata/labels", "value": {"x": "y"}}, *rotate(NEW, "x")],
            "labels, other",
        ),
    ],
    ids=["other-connection", "unannotated", "other-key", "other-run", "re-annotate", "labels"],
)
def test_the_runner_cannot_write_anything_else(
    rotation: dict[str, Any], secret: str, ops: list[dict[str, Any]], said: str
) -> None:
    ns = rotation["ns"]
    before = kubectl_json("get", "secret", secret, "-n", ns)
    refused = patch(ns, secret, rotation["token"], ops)
    assert refused.status_code == 403, refused.text
    assert said in refused.text, refused.text
    after = kubectl_json("get", "secret", secret, "-n", ns)
    assert after["data"] == before["data"] and after["metadata"].get("annotations") == before[
        "metadata"
    ].get("annotations")


def test_no_runner_identity_may_read_secrets_and_the_generic_one_may_not_write_them(
    rotation: dict[str, Any],
) -> None:
    ns = rotation["ns"]
    url = f"{API_SERVER}/api/v1/namespaces/{ns}/secrets/token-a"
    for token in (rotation["token"], rotation["generic"]):
        read = httpx.get(url, headers={"Authorization": f"Bearer {token}"}, verify=str(CA))
        assert read.status_code == 403, read.text
    write = patch(ns, "token-a", rotation["generic"], rotate(NEW, "x"))
    assert write.status_code == 403, write.text
