"""A run's pod log, read through the API's Kubernetes client (for `GET /runs/{run_id}/logs`).

A run's Job keeps its pods (and their logs) until the Job's TTL after the end
(`DATAPIPELINES_JOB_TTL_SECONDS`); the pods carry the run's name in the `datapipelines.io/run`
label, so the newest one is the last attempt. Needs `list` on `pods` and `get` on `pods/log`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from datapipelines.api.apiserver import (
    REQUEST_ERRORS,
    TRANSPORT_ERRORS,
    ApiServer,
    ApiServerError,
    core_path,
    timeout_of,
)
from datapipelines.api.errors import KubeUnavailable
from datapipelines.api.kube import KubeStore, translate
from datapipelines.resources import LABEL_RUN

LOG_LIMIT_BYTES = 4 * 1024 * 1024
READ_TIMEOUT = timeout_of(5, 30)  # connect, read seconds
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class PodLog:
    pod: str
    text: str
    truncated: bool = False


class PodLogSource(Protocol):
    async def run_log(
        self, namespace: str, run_id: str, *, tail_lines: int | None
    ) -> PodLog | None:
        """The log of the run's newest pod; None when no pod of the run exists (any more)."""


class KubePodLogs:
    """Pod logs over the KubeStore's apiserver client (`api` replaces it, for tests)."""

    def __init__(self, store: KubeStore, api: ApiServer | None = None) -> None:
        self.store = store
        self._api = api

    def _client(self) -> ApiServer:
        if self._api is not None:
            return self._api
        self.store.ensure_ready()
        api = self.store.api
        if api is None:
            raise KubeUnavailable("Kubernetes API not reachable: not connected yet")
        return api

    async def run_log(
        self, namespace: str, run_id: str, *, tail_lines: int | None
    ) -> PodLog | None:
        api = self._client()
        try:
            pods = await api.get(
                core_path("v1", "pods", namespace),
                {"labelSelector": f"{LABEL_RUN}={run_id}"},
                deadline=READ_TIMEOUT,
            )
        except REQUEST_ERRORS as exc:
            raise translate(exc, "listing the run's pods") from exc
        items = [p for p in pods.get("items") or [] if isinstance(p, dict)]
        if not items:
            return None
        pod = str(max(items, key=_pod_age_key)["metadata"]["name"])
        try:
            text = await api.request_text(
                "GET",
                core_path("v1", "pods", namespace, pod, sub="log"),
                params={"tailLines": tail_lines, "limitBytes": LOG_LIMIT_BYTES},
                deadline=READ_TIMEOUT,
                accept="*/*",
            )
        except ApiServerError as exc:
            if exc.status == 404:  # the pod went away meanwhile
                return None
            if exc.status == 400:  # its container has not started yet: no log
                return PodLog(pod=pod, text="")
            raise translate(exc, f"reading the log of pod {pod}") from exc
        except TRANSPORT_ERRORS as exc:
            raise translate(exc, f"reading the log of pod {pod}") from exc
        return PodLog(pod=pod, text=text, truncated=len(text.encode()) >= LOG_LIMIT_BYTES)


def _pod_age_key(pod: dict[str, Any]) -> tuple[datetime, str]:
    meta = pod.get("metadata") or {}
    try:
        created = datetime.fromisoformat(str(meta.get("creationTimestamp")))
    except ValueError:
        created = _EPOCH
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    return created, str(meta.get("name"))
