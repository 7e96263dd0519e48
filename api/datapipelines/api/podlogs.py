"""A run's pod log, read through the API's Kubernetes client (for `GET /runs/{run_id}/logs`).

A run's Job keeps its pods (and their logs) until the Job's TTL after the end
(`DATAPIPELINES_JOB_TTL_SECONDS`); the pods carry the run's name in the `datapipelines.io/run`
label, so the newest one is the last attempt. Needs `list` on `pods` and `get` on `pods/log`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import aiohttp
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio.client.exceptions import ApiException

from datapipelines.api.errors import KubeUnavailable
from datapipelines.api.kube import KubeStore, translate
from datapipelines.resources import LABEL_RUN

LOG_LIMIT_BYTES = 4 * 1024 * 1024
READ_TIMEOUT = (5, 30)  # connect, read seconds
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
    """Pod logs over the KubeStore's client (`core` replaces the CoreV1Api, for tests)."""

    def __init__(self, store: KubeStore, core: Any | None = None) -> None:
        self.store = store
        self._core = core

    def _core_api(self) -> Any:
        if self._core is None:
            self.store.ensure_ready()
            custom = self.store.custom
            if custom is None:
                raise KubeUnavailable("Kubernetes API not reachable: not connected yet")
            self._core = k8s.CoreV1Api(custom.api_client)  # type: ignore[attr-defined]
        return self._core

    async def run_log(
        self, namespace: str, run_id: str, *, tail_lines: int | None
    ) -> PodLog | None:
        core = self._core_api()
        try:
            pods = await core.list_namespaced_pod(
                namespace, label_selector=f"{LABEL_RUN}={run_id}", _request_timeout=READ_TIMEOUT
            )
        except (TimeoutError, ApiException, aiohttp.ClientError, OSError) as exc:
            raise translate(exc, "listing the run's pods") from exc
        items = list(pods.items or [])
        if not items:
            return None
        pod = max(items, key=_pod_age_key).metadata.name
        try:
            text = await core.read_namespaced_pod_log(
                pod,
                namespace,
                tail_lines=tail_lines,
                limit_bytes=LOG_LIMIT_BYTES,
                _request_timeout=READ_TIMEOUT,
            )
        except ApiException as exc:
            if exc.status == 404:  # the pod went away meanwhile
                return None
            if exc.status == 400:  # its container has not started yet: no log
                return PodLog(pod=pod, text="")
            raise translate(exc, f"reading the log of pod {pod}") from exc
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise translate(exc, f"reading the log of pod {pod}") from exc
        text = str(text or "")
        return PodLog(pod=pod, text=text, truncated=len(text.encode()) >= LOG_LIMIT_BYTES)


def _pod_age_key(pod: Any) -> tuple[datetime, str]:
    created = pod.metadata.creation_timestamp
    if not isinstance(created, datetime):
        created = _EPOCH
    elif created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    return created, str(pod.metadata.name)
