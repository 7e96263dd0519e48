"""The operator's settings: one object, read once from the environment (docs/contracts.md).

| variable | meaning | default |
| --- | --- | --- |
| ``DATAPIPELINES_NAMESPACE`` | namespace watched; empty = ``POD_NAMESPACE`` or ``default`` | |
| ``DATAPIPELINES_KUBECONFIG`` / ``KUBECONFIG`` | kubeconfig outside a cluster | in-cluster |
| ``DATAPIPELINES_RUNNER_IMAGE`` | default runner image | ``localhost/…-runner:dev`` |
| ``DATAPIPELINES_RUNNER_IMAGE_PULL_POLICY`` | runner image pull policy | ``IfNotPresent`` |
| ``DATAPIPELINES_RUNNER_SERVICE_ACCOUNT`` | runner ServiceAccount | ``datapipelines-runner`` |
| ``DATAPIPELINES_RUNNER_HOST_NETWORK`` | ``true``: runner pods use ``hostNetwork`` | ``false`` |
| ``DATAPIPELINES_KUBE_API`` | apiserver URL handed to runner pods | empty |
| ``DATAPIPELINES_JOB_TTL_SECONDS`` | ``ttlSecondsAfterFinished`` of Jobs | ``3600`` |
| ``DATAPIPELINES_HISTORY_DSN`` | PostgreSQL DSN of the run archive | empty (off) |
| ``DATAPIPELINES_METRICS_PORT`` | Prometheus metrics port (0 = off) | ``9090`` |
| ``DATAPIPELINES_HEALTH_PORT`` | liveness endpoint port ``/healthz`` (0 = off) | ``8080`` |
| ``DATAPIPELINES_LISTEN_HOST`` | address of the health and metrics servers | ``0.0.0.0`` |
| ``DATAPIPELINES_LEADER_ELECTION`` | hold a Lease so only one replica acts | ``true`` |
| ``DATAPIPELINES_LEASE_NAME`` | name of that Lease | ``datapipelines-operator`` |
| ``DATAPIPELINES_LEASE_DURATION_SECONDS`` | Lease duration (takeover after a crash) | ``15`` |
| ``DATAPIPELINES_SCHEDULE_INTERVAL_SECONDS`` | how often schedules are checked | ``20`` |
| ``DATAPIPELINES_SYNC_INTERVAL_SECONDS`` | safety re-check of active runs | ``60`` |
| ``DATAPIPELINES_LOG_FORMAT`` | ``json`` or ``text`` | ``json`` |
| ``DATAPIPELINES_LOG_LEVEL`` | ``DEBUG``/``INFO``/``WARNING`` | ``INFO`` |
"""

from __future__ import annotations

import os
import socket
import uuid
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Prefix of kopf's own bookkeeping (finalizer, progress and diff-base annotations).
KOPF_PREFIX = "operator.datapipelines.io"
FINALIZER = f"{KOPF_PREFIX}/finalizer"

_RANDOM = uuid.uuid4().hex[:6]

RUNNER_CONTAINER = "runner"
RUNNER_UID = 10001
SECRETS_DIR = "/var/run/datapipelines/secrets"
DATA_DIR = "/var/lib/datapipelines"


class Settings(BaseSettings):
    """All operator settings; see the module docstring for the environment variables."""

    model_config = SettingsConfigDict(env_prefix="DATAPIPELINES_", extra="ignore")

    namespace: str = ""
    kubeconfig: str = ""
    runner_image: str = "localhost/datapipelines-runner:dev"
    runner_image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    runner_service_account: str = "datapipelines-runner"
    runner_host_network: bool = False
    kube_api: str = ""
    job_ttl_seconds: int = Field(default=3600, ge=0)
    history_dsn: str = ""
    metrics_port: int = Field(default=9090, ge=0, le=65535)
    health_port: int = Field(default=8080, ge=0, le=65535)
    listen_host: str = "0.0.0.0"
    leader_election: bool = True
    lease_name: str = "datapipelines-operator"
    lease_duration_seconds: int = Field(default=15, ge=5)
    schedule_interval_seconds: float = Field(default=20.0, gt=0)
    sync_interval_seconds: float = Field(default=60.0, gt=0)
    log_format: Literal["json", "text"] = "json"
    log_level: str = "INFO"

    def watched_namespace(self) -> str:
        """``DATAPIPELINES_NAMESPACE``, else the pod's namespace, else ``default``."""
        if self.namespace:
            return self.namespace
        pod_ns = os.environ.get("POD_NAMESPACE", "")
        if pod_ns:
            return pod_ns
        try:
            with open("/var/run/secrets/kubernetes.io/serviceaccount/namespace") as f:
                return f.read().strip() or "default"
        except OSError:
            return "default"

    def kubeconfig_path(self) -> str:
        return self.kubeconfig or os.environ.get("KUBECONFIG", "")

    @staticmethod
    def identity() -> str:
        """This replica's identity for the Lease: ``POD_NAME``, else host, pid and a random part
        (with hostNetwork two replicas on one node share the host name, often also pid 1)."""
        return os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}-{_RANDOM}"
