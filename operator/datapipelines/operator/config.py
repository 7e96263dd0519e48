"""The operator's settings: one object, read once from the environment (docs/operator.md).

| variable | meaning | default |
| --- | --- | --- |
| ``DATAPIPELINES_NAMESPACE`` | namespaces watched: empty = all, or a comma list | the pod's |
| ``DATAPIPELINES_SHARD_SELECTOR`` | serve only namespaces with matching labels | |
| ``DATAPIPELINES_SHARD_POLL_SECONDS`` | how often a shard lists its namespaces | ``30`` |
| ``DATAPIPELINES_KUBECONFIG`` / ``KUBECONFIG`` | kubeconfig outside a cluster | in-cluster |
| ``DATAPIPELINES_RUNNER_IMAGE`` | default runner image | ``localhost/…-runner:dev`` |
| ``DATAPIPELINES_RUNNER_IMAGE_PULL_POLICY`` | runner image pull policy | ``IfNotPresent`` |
| ``DATAPIPELINES_RUNNER_SERVICE_ACCOUNT`` | runner ServiceAccount (per namespace) | see chart |
| ``DATAPIPELINES_RUNNER_OAUTH2_ROLE`` | Role of token-rotating runners | see chart |
| ``DATAPIPELINES_RUNNER_HOST_NETWORK`` | ``true``: runner pods use ``hostNetwork`` | ``false`` |
| ``DATAPIPELINES_RUNNER_NODE_SELECTOR`` | JSON object: nodeSelector of runner pods | ``{}`` |
| ``DATAPIPELINES_RUNNER_TOLERATIONS`` | JSON list: tolerations of runner pods | ``[]`` |
| ``DATAPIPELINES_KUBE_API`` | apiserver URL handed to runner pods | empty |
| ``DATAPIPELINES_WAREHOUSE_CLAIM`` | PVC (per namespace) mounted as the warehouse | empty |
| ``DATAPIPELINES_SANDBOX_IMAGES`` | image repositories a connection may name | the runner's |
| ``DATAPIPELINES_SANDBOX_VOLUME_TYPES`` | volume types a connection may mount | pvc, … |
| ``DATAPIPELINES_SANDBOX_ENV_SECRETS`` | Secrets runner.env may read (empty = none) | |
| ``DATAPIPELINES_SANDBOX_DENIED_SECRETS`` | Secrets no connection may reference | |
| ``DATAPIPELINES_JOB_TTL_SECONDS`` | ``ttlSecondsAfterFinished`` of Jobs | ``3600`` |
| ``DATAPIPELINES_BATCH_TTL_SECONDS`` | finished PipelineBatches are deleted after | ``86400`` |
| ``DATAPIPELINES_ORPHAN_GRACE_SECONDS`` | runs of a deleted connection kept for | ``600`` |
| ``DATAPIPELINES_CONNECTION_GRACE_SECONDS`` | a run of a missing connection fails after | ``30`` |
| ``DATAPIPELINES_HISTORY_DSN`` | PostgreSQL DSN of the run archive | empty (off) |
| ``DATAPIPELINES_EVENTS`` | ``all`` or ``warnings``: which Kubernetes Events to post | ``all`` |
| ``DATAPIPELINES_METRICS_PORT`` | Prometheus metrics port (0 = off) | ``9090`` |
| ``DATAPIPELINES_HEALTH_PORT`` | liveness endpoint port ``/healthz`` (0 = off) | ``8080`` |
| ``DATAPIPELINES_LISTEN_HOST`` | address of the health and metrics servers | ``0.0.0.0`` |
| ``DATAPIPELINES_LEADER_ELECTION`` | hold a Lease so only one replica acts | ``true`` |
| ``DATAPIPELINES_LEASE_NAME`` | name of that Lease (shards add a suffix) | see chart |
| ``DATAPIPELINES_LEASE_NAMESPACE`` | namespace of the Lease | the pod's |
| ``DATAPIPELINES_LEASE_DURATION_SECONDS`` | Lease duration (takeover after a crash) | ``15`` |
| ``DATAPIPELINES_RENEW_DEADLINE_SECONDS`` | stop acting when not renewed within | ``10`` |
| ``DATAPIPELINES_RETRY_PERIOD_SECONDS`` | how often the Lease is renewed / tried | ``2`` |
| ``DATAPIPELINES_REQUEST_TIMEOUT_SECONDS`` | deadline of every apiserver call | ``10`` |
| ``DATAPIPELINES_WORKERS`` | concurrent reconciles | ``8`` |
| ``DATAPIPELINES_APISERVER_QPS`` | writes per second, on average (Lease calls exempt) | ``50`` |
| ``DATAPIPELINES_APISERVER_BURST`` | writes at once above that average | ``100`` |
| ``DATAPIPELINES_SYNC_INTERVAL_SECONDS`` | safety re-check of active runs and batches | ``60`` |
| ``DATAPIPELINES_LOG_FORMAT`` | ``json`` or ``text`` | ``json`` |
| ``DATAPIPELINES_LOG_LEVEL`` | ``DEBUG``/``INFO``/``WARNING`` | ``INFO`` |
"""

from __future__ import annotations

import hashlib
import os
import socket
import uuid
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from datapipelines.resources.incluster import SERVICE_ACCOUNT_DIR
from datapipelines.resources.namespaces import watched

_RANDOM = uuid.uuid4().hex[:6]

DEFAULT_VOLUME_TYPES = ("persistentVolumeClaim", "emptyDir", "configMap")

#: A list given as "a,b,c" in the environment (not JSON).
CommaList = Annotated[list[str], NoDecode]


def _split(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """All operator settings; see the module docstring for the environment variables."""

    model_config = SettingsConfigDict(env_prefix="DATAPIPELINES_", extra="ignore")

    namespace: str | None = None
    shard_selector: str = ""
    shard_poll_seconds: float = Field(default=30.0, gt=0)
    kubeconfig: str = ""
    runner_image: str = "localhost/datapipelines-runner:dev"
    runner_image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    runner_service_account: str = "datapipelines-runner"
    #: The Role a token-rotating connection's runner identity is bound to (the chart's).
    runner_oauth2_role: str = "datapipelines-runner-oauth2"
    runner_host_network: bool = False
    runner_node_selector: dict[str, str] = Field(default_factory=dict)
    runner_tolerations: list[dict[str, Any]] = Field(default_factory=list)
    #: The runner container's default requests/limits (a connection's runner.resources
    #: overrides them key by key). Bounded by default: a big sync cannot fill a node's disk.
    runner_resources: dict[str, dict[str, str]] = Field(
        default_factory=lambda: {
            "requests": {"cpu": "100m", "memory": "256Mi", "ephemeral-storage": "256Mi"},
            "limits": {"memory": "2Gi", "ephemeral-storage": "20Gi"},
        }
    )
    #: sizeLimit of the runner's working directory (dlt's load packages) and of its /tmp.
    runner_scratch_size_limit: str = "20Gi"
    runner_tmp_size_limit: str = "2Gi"
    #: The largest runner.resources a connection may ask for ({"limits": {...}}; applies to
    #: requests and limits alike). The chart's admission policy enforces the same.
    sandbox_max_resources: dict[str, dict[str, str]] = Field(default_factory=dict)
    kube_api: str = ""
    warehouse_claim: str = ""
    sandbox_images: CommaList = Field(default_factory=list)
    sandbox_volume_types: CommaList = Field(default_factory=lambda: list(DEFAULT_VOLUME_TYPES))
    sandbox_env_secrets: CommaList = Field(default_factory=list)
    sandbox_denied_secrets: CommaList = Field(default_factory=list)
    job_ttl_seconds: int = Field(default=3600, ge=0)
    batch_ttl_seconds: int = Field(default=86400, ge=0)
    orphan_grace_seconds: int = Field(default=600, ge=0)
    #: How long a run waits for a connection that does not exist (yet) before it fails.
    connection_grace_seconds: float = Field(default=30.0, ge=0)
    history_dsn: str = ""
    events: Literal["all", "warnings"] = "all"
    metrics_port: int = Field(default=9090, ge=0, le=65535)
    health_port: int = Field(default=8080, ge=0, le=65535)
    listen_host: str = "0.0.0.0"
    leader_election: bool = True
    lease_name: str = "datapipelines-operator"
    lease_namespace: str = ""
    lease_duration_seconds: float = Field(default=15, ge=3)
    renew_deadline_seconds: float = Field(default=10, gt=0)
    retry_period_seconds: float = Field(default=2, gt=0)
    request_timeout_seconds: float = Field(default=10, gt=0, le=120)
    apiserver_qps: float = Field(default=50, gt=0)
    apiserver_burst: int = Field(default=100, ge=1)
    workers: int = Field(default=8, ge=1, le=256)
    sync_interval_seconds: float = Field(default=60.0, gt=0)
    log_format: Literal["json", "text"] = "json"
    log_level: str = "INFO"

    @field_validator(
        "sandbox_images",
        "sandbox_volume_types",
        "sandbox_env_secrets",
        "sandbox_denied_secrets",
        mode="before",
    )
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        return _split(value)

    @model_validator(mode="after")
    def _lease_timings(self) -> Settings:
        # client-go's rule: the holder gives up (renewDeadline) before others may take over
        # (leaseDuration), and retries several times within that deadline.
        if (
            not self.retry_period_seconds
            < self.renew_deadline_seconds
            < self.lease_duration_seconds
        ):
            raise ValueError(
                "need retryPeriod < renewDeadline < leaseDuration (seconds: "
                f"{self.retry_period_seconds}, {self.renew_deadline_seconds}, "
                f"{self.lease_duration_seconds})"
            )
        if self.request_timeout_seconds >= self.lease_duration_seconds:
            self.request_timeout_seconds = self.renew_deadline_seconds / 2
        return self

    # ------------------------------------------------------------------ derived

    def watched_namespaces(self) -> list[str]:
        """The namespaces served: ``[]`` means all of them (the variable set to "" or "*");
        not set at all means the operator's own namespace."""
        return watched(self.namespace, own_namespace())

    def allowed_images(self) -> list[str]:
        """Image repositories a connection may name: the setting, plus the default runner's."""
        own = self.runner_image.rsplit("@", 1)[0]
        repo = own.rsplit(":", 1)[0] if ":" in own.rsplit("/", 1)[-1] else own
        return list(dict.fromkeys([*self.sandbox_images, repo]))

    def lease_for_shard(self) -> str:
        """The Lease name: one per shard, so each shard elects its own leader."""
        if not self.shard_selector:
            return self.lease_name
        digest = hashlib.sha256(self.shard_selector.encode()).hexdigest()[:8]
        return f"{self.lease_name}-{digest}"

    def lease_home(self) -> str:
        """Where the Lease lives: the setting, else the pod's namespace, else the first
        watched one."""
        if self.lease_namespace:
            return self.lease_namespace
        if os.environ.get("POD_NAMESPACE"):
            return os.environ["POD_NAMESPACE"]
        watched = self.watched_namespaces()
        return watched[0] if watched else own_namespace()

    def kubeconfig_path(self) -> str:
        return self.kubeconfig or os.environ.get("KUBECONFIG", "")

    @staticmethod
    def identity() -> str:
        """This replica's identity for the Lease: ``POD_NAME``, else host, pid and a random part
        (with hostNetwork two replicas on one node share the host name, often also pid 1)."""
        return os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}-{_RANDOM}"


def own_namespace() -> str:
    """``POD_NAMESPACE``, else the service account's namespace file, else ``default``."""
    pod_ns = os.environ.get("POD_NAMESPACE", "")
    if pod_ns:
        return pod_ns
    try:
        with open(f"{SERVICE_ACCOUNT_DIR}/namespace") as f:
            return f.read().strip() or "default"
    except OSError:
        return "default"
