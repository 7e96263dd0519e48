"""PipelineRun + PipelineConnection → the batch/v1 Job that runs the runner. Pure.

See docs/contracts.md ("Operator → runner pod") for the env vars and the volume layout; the
names are the shared contract's (``datapipelines.resources.podcontract``).
"""

from __future__ import annotations

import copy
import json
from typing import Any

from datapipelines.resources import (
    API_VERSION,
    CONNECTION_KIND,
    LABEL_BATCH,
    LABEL_CONNECTION,
    LABEL_MANAGED_BY,
    LABEL_RUN,
    LABEL_TRIGGER,
    MANAGED_BY_OPERATOR,
    RUN_KIND,
    oauth2,
    quantity,
)
from datapipelines.resources import podcontract as pod
from datapipelines.resources.connection import (
    ConnectionSpec,
    DestinationType,
    SourceType,
    VolumeSource,
)
from datapipelines.resources.run import PipelineRun

from .config import Settings

RESTRICTED_CONTAINER: dict[str, Any] = {
    "runAsNonRoot": True,
    "runAsUser": pod.RUNNER_UID,
    "runAsGroup": pod.RUNNER_UID,
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "privileged": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def run_labels(run: PipelineRun) -> dict[str, str]:
    """Labels tying a Job/pod to its run, connection and batch."""
    labels = {
        LABEL_RUN: run.name,
        LABEL_CONNECTION: run.spec.connection_name,
        LABEL_TRIGGER: run.spec.trigger.value,
        LABEL_MANAGED_BY: MANAGED_BY_OPERATOR,
        "app.kubernetes.io/name": "datapipelines-runner",
        "app.kubernetes.io/component": "runner",
        "app.kubernetes.io/part-of": "datapipelines",
    }
    batch = run.metadata.labels.get(LABEL_BATCH)
    if batch:
        labels[LABEL_BATCH] = batch
    return labels


def _volume(name: str, source: VolumeSource) -> dict[str, Any]:
    return {"name": name, **source.model_dump(by_alias=True, exclude_none=True)}


def volumes(
    spec: ConnectionSpec, settings: Settings
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The pod's volumes and the runner container's mounts."""
    vols: list[dict[str, Any]] = [
        {"name": "data", "emptyDir": {"sizeLimit": settings.runner_scratch_size_limit}},
        {"name": "tmp", "emptyDir": {"sizeLimit": settings.runner_tmp_size_limit}},
    ]
    mounts: list[dict[str, Any]] = [
        {"name": "data", "mountPath": pod.DATA_DIR},
        {"name": "tmp", "mountPath": pod.TMP_DIR},
    ]
    # One Secret volume per Secret, projecting exactly the referenced keys.
    by_secret: dict[str, list[str]] = {}
    for ref in spec.secret_refs():
        keys = by_secret.setdefault(ref.name, [])
        if ref.key not in keys:
            keys.append(ref.key)
    for index, (name, keys) in enumerate(sorted(by_secret.items())):
        vol = f"secret-{index}"
        vols.append(
            {
                "name": vol,
                "secret": {
                    "secretName": name,
                    "items": [{"key": k, "path": k} for k in keys],
                    "defaultMode": 0o440,
                },
            }
        )
        mounts.append({"name": vol, "mountPath": f"{pod.SECRETS_DIR}/{name}", "readOnly": True})

    if spec.destination.type is DestinationType.DUCKDB:
        duck = spec.destination.duck
        if duck.on_warehouse and settings.warehouse_claim:
            vols.append(
                {
                    "name": "warehouse",
                    "persistentVolumeClaim": {"claimName": settings.warehouse_claim},
                }
            )
            mounts.append({"name": "warehouse", "mountPath": pod.WAREHOUSE_DIR})
        elif duck.volume is not None:
            vols.append(_volume("duckdb", duck.volume))
            mounts.append({"name": "duckdb", "mountPath": pod.dirname(duck.file)})

    fs = spec.source.filesystem
    if spec.type is SourceType.FILESYSTEM and fs is not None and fs.volume is not None:
        path = pod.bucket_dir(fs.bucket_url)
        if path:
            vols.append(_volume("source", fs.volume))
            mounts.append({"name": "source", "mountPath": path, "readOnly": True})
    return vols, mounts


def runner_env(
    name: str, namespace: str, run: PipelineRun, spec: ConnectionSpec, settings: Settings
) -> list[dict[str, Any]]:
    ours: list[dict[str, Any]] = [
        {"name": pod.ENV_CONNECTION_NAME, "value": name},
        {"name": pod.ENV_RUN_NAME, "value": run.name},
        {"name": pod.ENV_NAMESPACE, "value": namespace},
        {
            "name": pod.ENV_POD_NAME,
            "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
        },
        {
            "name": pod.ENV_CONNECTION_SPEC,
            "value": json.dumps(spec.to_k8s(), separators=(",", ":"), sort_keys=True),
        },
        {"name": pod.ENV_SECRETS_DIR, "value": pod.SECRETS_DIR},
        {"name": pod.ENV_DATA_DIR, "value": pod.DATA_DIR},
        {"name": pod.ENV_KUBE_API, "value": settings.kube_api},
        {"name": pod.ENV_LOG_FORMAT, "value": settings.log_format},
    ]
    options = run.spec.options
    if options is not None:  # full refresh, streams, since: the run's own, from its spec
        ours.append(
            {
                "name": pod.ENV_RUN_OPTIONS,
                "value": json.dumps(options.to_k8s(), separators=(",", ":"), sort_keys=True),
            }
        )
    # Admission and the model refuse any other name; a spec stored before the rule is filtered.
    user = [e.to_k8s() for e in spec.runner.env if pod.env_name_allowed(e.name)]
    return user + ours


def render_job(
    connection: str, spec: ConnectionSpec, run: PipelineRun, settings: Settings
) -> dict[str, Any]:
    """The Job manifest for ``run`` of the connection named ``connection``."""
    namespace = run.namespace
    labels = run_labels(run)
    vols, mounts = volumes(spec, settings)
    container: dict[str, Any] = {
        "name": pod.RUNNER_CONTAINER,
        "image": spec.runner.image or settings.runner_image,
        "imagePullPolicy": settings.runner_image_pull_policy,
        "env": runner_env(connection, namespace, run, spec, settings),
        "volumeMounts": mounts,
        "terminationMessagePath": pod.TERMINATION_LOG,
        # the runner's JSON result when it wrote one; a runner that crashed before writing it
        # leaves the end of its log instead (≤ 2 KiB), so the failure names its own last error
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": copy.deepcopy(RESTRICTED_CONTAINER),
    }
    own = spec.runner.resources.to_k8s() if spec.runner.resources is not None else None
    resources = quantity.merged(settings.runner_resources, own)
    if resources:
        container["resources"] = resources
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "serviceAccountName": (
            oauth2.runner_account(connection)
            if spec.oauth2 is not None
            else settings.runner_service_account
        ),
        "automountServiceAccountToken": True,
        "enableServiceLinks": False,
        "hostNetwork": settings.runner_host_network,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": pod.RUNNER_UID,
            "runAsGroup": pod.RUNNER_UID,
            "fsGroup": pod.RUNNER_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": vols,
    }
    if settings.runner_host_network:
        pod_spec["dnsPolicy"] = "ClusterFirstWithHostNet"
    if settings.runner_node_selector:
        pod_spec["nodeSelector"] = dict(settings.runner_node_selector)
    if settings.runner_tolerations:
        pod_spec["tolerations"] = list(settings.runner_tolerations)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": run.name,
            "namespace": namespace,
            "labels": labels,
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": RUN_KIND,
                    "name": run.name,
                    "uid": run.metadata.uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "backoffLimit": spec.retries,
            "activeDeadlineSeconds": spec.timeout_seconds,
            "ttlSecondsAfterFinished": settings.job_ttl_seconds,
            "completions": 1,
            "parallelism": 1,
            # A new attempt starts only once the previous pod is gone: never two runners at once.
            "podReplacementPolicy": "Failed",
            "podFailurePolicy": {
                "rules": [
                    {  # bad configuration or a broken schema contract: retrying cannot help
                        "action": "FailJob",
                        "onExitCodes": {
                            "containerName": pod.RUNNER_CONTAINER,
                            "operator": "In",
                            "values": list(pod.EXIT_NO_RETRY),
                        },
                    },
                    {
                        "action": "Ignore",
                        "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
                    },
                ]
            },
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
    }


def oauth2_identity(
    connection: str, namespace: str, uid: str, settings: Settings
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ServiceAccount and RoleBinding a token-rotating connection's runner runs as
    (``dp-oauth2-<connection>``, owned by the connection: they end with it). The admission
    policy lets this identity write only the refresh token of a Secret annotated for the
    connection (docs/security.md, "Rotated tokens")."""
    name = oauth2.runner_account(connection)
    meta = {
        "name": name,
        "namespace": namespace,
        "labels": {LABEL_CONNECTION: connection, LABEL_MANAGED_BY: MANAGED_BY_OPERATOR},
        "ownerReferences": [
            {
                "apiVersion": API_VERSION,
                "kind": CONNECTION_KIND,
                "name": connection,
                "uid": uid,
            }
        ],
    }
    account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta}
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": copy.deepcopy(meta),
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": settings.runner_oauth2_role,
        },
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
    }
    return account, binding
