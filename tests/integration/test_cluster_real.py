"""The local cluster is a real Kubernetes: a real kubelet runs real containers.

Each test works in a namespace of its own. Pods use hostNetwork (traffic stays on 127.0.0.1)
and the locally built base image (never pulled: imagePullPolicy Never).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client, config

from tests.support.cluster import API_SERVER, APP_IMAGE, BASE_IMAGE, NODE_NAME, RUNNER_IMAGE
from tests.support.kube import create_namespace, delete_namespace
from tests.support.waiting import wait_until

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.timeout(600),
    pytest.mark.asyncio(loop_scope="session"),
]


@pytest.fixture
async def api(kubeconfig: Path) -> AsyncIterator[client.ApiClient]:
    api_client = await config.new_client_from_config(config_file=str(kubeconfig))
    try:
        yield api_client
    finally:
        await api_client.close()


@pytest.fixture
def namespace(kubeconfig: Path) -> Iterator[str]:
    name = create_namespace("cluster-test")
    yield name
    delete_namespace(name)


def job_manifest(
    name: str,
    code: str,
    *,
    backoff_limit: int = 0,
    service_account: str | None = None,
) -> dict[str, Any]:
    pod_spec: dict[str, Any] = {
        "hostNetwork": True,
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": 1,
        "securityContext": {"runAsUser": 10001, "runAsGroup": 10001, "runAsNonRoot": True},
        "containers": [
            {
                "name": "main",
                "image": BASE_IMAGE,
                "imagePullPolicy": "Never",
                "command": ["python3", "-c", code],
            }
        ],
    }
    if service_account:
        pod_spec["serviceAccountName"] = service_account
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"backoffLimit": backoff_limit, "template": {"spec": pod_spec}},
    }


async def job_condition(batch: client.BatchV1Api, ns: str, name: str) -> str | None:
    job = await batch.read_namespaced_job_status(name, ns)
    for cond in job.status.conditions or []:
        if cond.type in ("Complete", "Failed") and cond.status == "True":
            return cond.type
    return None


async def job_pods(core: client.CoreV1Api, ns: str, name: str) -> list[client.V1Pod]:
    pods = await core.list_namespaced_pod(ns, label_selector=f"job-name={name}")
    return list(pods.items)


async def pod_logs(core: client.CoreV1Api, ns: str, name: str) -> str:
    """The pod's log as text (served by the kubelet through the API server)."""
    resp = await core.read_namespaced_pod_log(name, ns, _preload_content=False)
    try:
        return await resp.text()
    finally:
        resp.release()


async def run_job(
    api: client.ApiClient, ns: str, manifest: dict[str, Any], within: float = 180
) -> tuple[str, client.V1Job]:
    batch = client.BatchV1Api(api)
    name = manifest["metadata"]["name"]
    await batch.create_namespaced_job(ns, manifest)

    async def finished() -> str | None:
        return await job_condition(batch, ns, name)

    outcome = await wait_until(finished, within, what=f"Job {ns}/{name} to finish")
    return outcome, await batch.read_namespaced_job_status(name, ns)


async def test_node_is_a_real_kubelet_with_containerd(api: client.ApiClient) -> None:
    node = await client.CoreV1Api(api).read_node(NODE_NAME)
    ready = {c.type: c.status for c in node.status.conditions}
    assert ready["Ready"] == "True"
    info = node.status.node_info
    assert info.kubelet_version.startswith("v1.33.")
    assert info.container_runtime_version.startswith("containerd://1.6")
    addresses = {a.type: a.address for a in node.status.addresses}
    assert addresses["InternalIP"] == "127.0.0.1"


@pytest.mark.pods
async def test_job_runs_local_image_and_logs_are_readable(
    api: client.ApiClient, namespace: str
) -> None:
    code = "import os, sys; print('hello from a real pod', os.getuid(), sys.version_info[:2])"
    outcome, job = await run_job(api, namespace, job_manifest("hello", code))
    assert outcome == "Complete", job.status
    assert job.status.succeeded == 1

    core = client.CoreV1Api(api)
    (pod,) = await job_pods(core, namespace, "hello")
    assert pod.spec.node_name == NODE_NAME
    assert pod.spec.host_network is True
    assert pod.status.phase == "Succeeded"
    # logs come from the kubelet through the API server (apiserver → kubelet TLS on 127.0.0.1)
    logs = await pod_logs(core, namespace, pod.metadata.name)
    assert "hello from a real pod 10001 (3, 11)" in logs


@pytest.mark.pods
async def test_failing_pod_fails_the_job_after_its_backoff(
    api: client.ApiClient, namespace: str
) -> None:
    code = "import sys; print('failing on purpose'); sys.exit(1)"
    outcome, job = await run_job(
        api, namespace, job_manifest("fails", code, backoff_limit=1), within=240
    )
    assert outcome == "Failed"
    (failed,) = [c for c in job.status.conditions if c.type == "Failed"]
    assert failed.reason == "BackoffLimitExceeded"
    assert job.status.failed == 2  # the first try and one retry
    pods = await job_pods(client.CoreV1Api(api), namespace, "fails")
    exit_codes = [
        s.state.terminated.exit_code
        for p in pods
        for s in p.status.container_statuses or []
        if s.state.terminated
    ]
    assert exit_codes and set(exit_codes) == {1}


@pytest.mark.pods
async def test_deleting_a_job_deletes_its_pods(api: client.ApiClient, namespace: str) -> None:
    batch, core = client.BatchV1Api(api), client.CoreV1Api(api)
    await batch.create_namespaced_job(
        namespace, job_manifest("sleeper", "import time; time.sleep(600)")
    )

    async def running() -> bool:
        pods = await job_pods(core, namespace, "sleeper")
        return any(p.status.phase == "Running" for p in pods)

    await wait_until(running, 180, what="the sleeper pod to run")
    await batch.delete_namespaced_job("sleeper", namespace, propagation_policy="Background")

    async def pods_gone() -> bool:
        return not await job_pods(core, namespace, "sleeper")

    # the garbage collector deletes the pods owned by the deleted Job; the kubelet kills them
    await wait_until(pods_gone, 120, what="the garbage collector to delete the Job's pods")


TOKEN_PROBE = """
import json, ssl, sys, urllib.error, urllib.request
SA = "/var/run/secrets/kubernetes.io/serviceaccount"
token = open(SA + "/token").read().strip()
ns = open(SA + "/namespace").read().strip()
ctx = ssl.create_default_context(cafile=SA + "/ca.crt")
def call(method, path, body=None):
    req = urllib.request.Request(API + path, method=method,
        data=json.dumps(body).encode() if body else None,
        headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, None
review = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
status, who = call("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", review)
pods, _ = call("GET", "/api/v1/namespaces/" + ns + "/pods")
secrets, _ = call("GET", "/api/v1/namespaces/" + ns + "/secrets")
print(json.dumps({"review": status, "user": who["status"]["userInfo"]["username"],
                  "pods": pods, "secrets": secrets}))
"""


@pytest.mark.pods
async def test_service_account_token_authenticates_to_the_api_server(
    api: client.ApiClient, namespace: str
) -> None:
    core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
    await core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="probe"))
    )
    await rbac.create_namespaced_role(
        namespace,
        {
            "metadata": {"name": "pod-reader"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}],
        },
    )
    await rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": "probe-reads-pods"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "pod-reader",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "probe", "namespace": namespace}],
        },
    )
    code = f"API = {API_SERVER!r}\n{TOKEN_PROBE}"
    outcome, _ = await run_job(api, namespace, job_manifest("token", code, service_account="probe"))
    (pod,) = await job_pods(core, namespace, "token")
    logs = await pod_logs(core, namespace, pod.metadata.name)
    assert outcome == "Complete", logs
    result = json.loads(logs.strip().splitlines()[-1])
    # the projected token authenticates as the ServiceAccount …
    assert result["review"] == 201
    assert result["user"] == f"system:serviceaccount:{namespace}:probe"
    # … and RBAC applies to it: pods are granted, secrets are not
    assert result["pods"] == 200
    assert result["secrets"] == 403


@pytest.mark.pods
@pytest.mark.parametrize(
    ("image", "check"),
    [
        (APP_IMAGE, "import shutil; assert shutil.which('datapipelines-api')"),
        (RUNNER_IMAGE, "import datapipelines.runner"),
    ],
    ids=["app", "runner"],
)
async def test_project_images_run_in_the_cluster_as_non_root(
    api: client.ApiClient, namespace: str, image: str, check: str
) -> None:
    """`make images` imported the project's images into the node's containerd."""
    manifest = job_manifest("image", f"import os; {check}; print('uid', os.getuid())")
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    container["image"] = image
    container["command"] = ["python3", "-c", container["command"][2]]
    # no runAsUser from the pod: the image's own USER must already be non-root
    manifest["spec"]["template"]["spec"]["securityContext"] = {"runAsNonRoot": True}
    outcome, _ = await run_job(api, namespace, manifest)
    core = client.CoreV1Api(api)
    (pod,) = await job_pods(core, namespace, "image")
    logs = await pod_logs(core, namespace, pod.metadata.name)
    assert outcome == "Complete", logs
    assert "uid 10001" in logs
