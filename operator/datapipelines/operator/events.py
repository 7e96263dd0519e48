"""Kubernetes Events, Prometheus metrics and structured log helpers."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from .kube import Kube

log = logging.getLogger("datapipelines.operator")
COMPONENT = "datapipelines-operator"

RUNS_STARTED = Counter(
    "datapipelines_runs_started_total", "Runs whose Job was created.", ["namespace", "connection"]
)
RUNS_SUCCEEDED = Counter(
    "datapipelines_runs_succeeded_total", "Runs that succeeded.", ["namespace", "connection"]
)
RUNS_FAILED = Counter(
    "datapipelines_runs_failed_total", "Runs that failed.", ["namespace", "connection"]
)
RUNS_CANCELLED = Counter(
    "datapipelines_runs_cancelled_total", "Runs that were cancelled.", ["namespace", "connection"]
)
RUN_DURATION = Histogram(
    "datapipelines_run_duration_seconds",
    "Duration of finished runs (start of the Job to the end).",
    ["namespace", "connection"],
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400),
)
RUNS_QUEUED = Gauge(
    "datapipelines_runs_queued", "Runs waiting for their connection.", ["namespace", "connection"]
)
RUNS_ACTIVE = Gauge(
    "datapipelines_runs_active",
    "Runs not yet finished (queued or running).",
    ["namespace", "connection"],
)

_FINISHED = {"Succeeded": RUNS_SUCCEEDED, "Failed": RUNS_FAILED, "Cancelled": RUNS_CANCELLED}


def count_finished(namespace: str, connection: str, phase: str, duration_ms: int | None) -> None:
    counter = _FINISHED.get(phase)
    if counter is not None:
        counter.labels(namespace, connection).inc()
    if duration_ms is not None and phase != "Cancelled":
        RUN_DURATION.labels(namespace, connection).observe(duration_ms / 1000)


def event_body(
    obj: dict[str, Any], type_: str, reason: str, message: str, now: str
) -> dict[str, Any]:
    """A core/v1 Event about ``obj`` (pure)."""
    meta = obj["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
        "involvedObject": {
            "apiVersion": obj.get("apiVersion"),
            "kind": obj.get("kind"),
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta.get("uid"),
        },
        "type": type_,
        "reason": reason,
        "message": message[:1024],
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "reportingInstance": COMPONENT,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }


async def post(
    kube: Kube, obj: dict[str, Any] | None, type_: str, reason: str, message: str
) -> None:
    """A Kubernetes Event on ``obj`` (best effort: never fails the caller)."""
    if not obj or not obj.get("metadata", {}).get("uid"):
        return
    now = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    try:
        await kube.request(
            "POST",
            f"/api/v1/namespaces/{obj['metadata']['namespace']}/events",
            body=event_body(obj, type_, reason, message, now),
        )
    except Exception as exc:  # posting is best effort
        log.debug("could not post event %s on %s: %s", reason, obj["metadata"].get("name"), exc)
