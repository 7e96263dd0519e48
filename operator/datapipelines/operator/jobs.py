"""PipelineRun + PipelineConnection → the batch/v1 Job that runs the runner. Pure.

See docs/contracts.md ("Operator → runner pod") for the env vars and the Secret file layout.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from typing import Any

from datapipelines.resources import (
    API_VERSION,
    LABEL_BATCH,
    LABEL_CONNECTION,
    LABEL_MANAGED_BY,
    LABEL_RUN,
    LABEL_TRIGGER,
    MANAGED_BY_OPERATOR,
    RUN_KIND,
)
from datapipelines.resources.models import DEFAULT_DUCKDB_PATH

from .config import DATA_DIR, RUNNER_CONTAINER, RUNNER_UID, SECRETS_DIR, Settings

MAX_NAME = 63


def short_name(base: str, suffix: str = "", limit: int = MAX_NAME) -> str:
    """``base-suffix`` (or ``base``), shortened with a stable hash to fit ``limit``."""
    full = f"{base}-{suffix}" if suffix else base
    if len(full) <= limit:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:8]
    tail = f"-{digest}-{suffix}" if suffix else f"-{digest}"
    return base[: limit - len(tail)].rstrip("-") + tail


def secret_refs(spec: Any) -> list[dict[str, str]]:
    """Every ``*SecretRef {name, key}`` anywhere in a connection spec, deduplicated, in order."""
    found: list[dict[str, str]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if (
                    key.endswith("SecretRef")
                    and isinstance(value, dict)
                    and isinstance(value.get("name"), str)
                    and isinstance(value.get("key"), str)
                ):
                    ref = {"name": value["name"], "key": value["key"]}
                    if ref not in found:
                        found.append(ref)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(spec)
    return found


def run_labels(run: dict[str, Any]) -> dict[str, str]:
    """Labels tying a Job/pod to its run, connection and batch."""
    meta = run["metadata"]
    spec = run.get("spec") or {}
    labels = {
        LABEL_RUN: meta["name"],
        LABEL_CONNECTION: spec["connectionName"],
        LABEL_MANAGED_BY: MANAGED_BY_OPERATOR,
        "app.kubernetes.io/name": "datapipelines-runner",
        "app.kubernetes.io/component": "runner",
        "app.kubernetes.io/part-of": "datapipelines",
    }
    trigger = spec.get("trigger")
    if trigger:
        labels[LABEL_TRIGGER] = trigger
    batch = (meta.get("labels") or {}).get(LABEL_BATCH)
    if batch:
        labels[LABEL_BATCH] = batch
    return labels


def _path_of_bucket(url: str) -> str | None:
    """Local directory of a filesystem source (``file:///x`` or ``/x``), else None."""
    if url.startswith("file://"):
        url = url[len("file://") :]
    return url.rstrip("/") or "/" if url.startswith("/") else None


def _volumes(spec: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    volumes: list[dict[str, Any]] = [
        {"name": "data", "emptyDir": {}},
        {"name": "tmp", "emptyDir": {}},
    ]
    mounts: list[dict[str, Any]] = [
        {"name": "data", "mountPath": DATA_DIR},
        {"name": "tmp", "mountPath": "/tmp"},
    ]

    # One Secret volume per Secret, projecting exactly the referenced keys.
    by_secret: dict[str, list[str]] = {}
    for ref in secret_refs(spec):
        by_secret.setdefault(ref["name"], [])
        if ref["key"] not in by_secret[ref["name"]]:
            by_secret[ref["name"]].append(ref["key"])
    for index, (name, keys) in enumerate(sorted(by_secret.items())):
        vol = f"secret-{index}"
        volumes.append(
            {
                "name": vol,
                "secret": {
                    "secretName": name,
                    "items": [{"key": k, "path": k} for k in keys],
                    "defaultMode": 0o440,
                },
            }
        )
        mounts.append({"name": vol, "mountPath": f"{SECRETS_DIR}/{name}", "readOnly": True})

    destination = spec.get("destination") or {}
    if destination.get("type", "duckdb") == "duckdb":
        duck = destination.get("duckdb") or {}
        path = duck.get("path") or DEFAULT_DUCKDB_PATH
        directory = posixpath.dirname(path)
        source = duck.get("volume") or None
        if directory == DATA_DIR:
            if source:  # the DuckDB volume is the data volume itself
                volumes[0] = {"name": "data", **source}
        elif source or not directory.startswith(DATA_DIR + "/"):
            volumes.append({"name": "duckdb", **(source or {"emptyDir": {}})})
            mounts.append({"name": "duckdb", "mountPath": directory})

    fs = (spec.get("source") or {}).get("filesystem") or {}
    if spec.get("type") == "filesystem" and fs.get("volume"):
        path = _path_of_bucket(fs.get("bucketUrl", ""))
        if path:
            volumes.append({"name": "source", **fs["volume"]})
            mounts.append({"name": "source", "mountPath": path, "readOnly": True})
    return volumes, mounts


def render_job(
    connection: dict[str, Any], run: dict[str, Any], settings: Settings
) -> dict[str, Any]:
    """The Job manifest for ``run`` of ``connection`` (both as apiserver objects)."""
    meta = run["metadata"]
    name = meta["name"]
    namespace = meta.get("namespace") or connection["metadata"].get("namespace")
    spec = connection.get("spec") or {}
    runner = spec.get("runner") or {}
    labels = run_labels(run)
    volumes, mounts = _volumes(spec)

    ours = [
        {"name": "DATAPIPELINES_CONNECTION_NAME", "value": connection["metadata"]["name"]},
        {"name": "DATAPIPELINES_RUN_NAME", "value": name},
        {"name": "DATAPIPELINES_NAMESPACE", "value": namespace},
        {
            "name": "DATAPIPELINES_CONNECTION_SPEC",
            "value": json.dumps(spec, separators=(",", ":"), sort_keys=True),
        },
        {"name": "DATAPIPELINES_SECRETS_DIR", "value": SECRETS_DIR},
        {"name": "DATAPIPELINES_DATA_DIR", "value": DATA_DIR},
        {"name": "DATAPIPELINES_KUBE_API", "value": settings.kube_api},
        {"name": "DATAPIPELINES_LOG_FORMAT", "value": settings.log_format},
    ]
    reserved = {e["name"] for e in ours}
    user_env = [e for e in runner.get("env") or [] if e.get("name") not in reserved]

    container: dict[str, Any] = {
        "name": RUNNER_CONTAINER,
        "image": runner.get("image") or settings.runner_image,
        "imagePullPolicy": settings.runner_image_pull_policy,
        "env": user_env + ours,
        "volumeMounts": mounts,
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUNNER_UID,
            "runAsGroup": RUNNER_UID,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "privileged": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    if runner.get("resources"):
        container["resources"] = runner["resources"]

    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "serviceAccountName": settings.runner_service_account,
        "automountServiceAccountToken": True,
        "enableServiceLinks": False,
        "hostNetwork": settings.runner_host_network,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUNNER_UID,
            "runAsGroup": RUNNER_UID,
            "fsGroup": RUNNER_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": volumes,
    }
    if settings.runner_host_network:
        pod_spec["dnsPolicy"] = "ClusterFirstWithHostNet"

    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": RUN_KIND,
                    "name": name,
                    "uid": meta["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "backoffLimit": int(spec.get("retries", 2)),
            "activeDeadlineSeconds": int(spec.get("timeoutSeconds", 3600)),
            "ttlSecondsAfterFinished": settings.job_ttl_seconds,
            "completions": 1,
            "parallelism": 1,
            # A new attempt starts only once the previous pod is gone: never two runners at once.
            "podReplacementPolicy": "Failed",
            # Exit code 2 = bad configuration: retrying cannot help.
            "podFailurePolicy": {
                "rules": [
                    {
                        "action": "FailJob",
                        "onExitCodes": {
                            "containerName": RUNNER_CONTAINER,
                            "operator": "In",
                            "values": [2],
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
