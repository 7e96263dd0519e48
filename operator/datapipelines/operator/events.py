"""Kubernetes Events and the operator's Prometheus metrics of runs."""

from __future__ import annotations

import contextlib

from prometheus_client import Counter, Gauge, Histogram

from datapipelines.resources.times import now_iso

from .reconcile.actions import Event

COMPONENT = "datapipelines-operator"

RUNS_STARTED = Counter(
    "datapipelines_runs_started_total", "Runs whose Job was created.", ["namespace", "connection"]
)
RUNS_FINISHED = Counter(
    "datapipelines_runs_finished_total",
    "Runs that ended, by phase (Succeeded, Failed, Cancelled).",
    ["namespace", "connection", "phase"],
)
RUN_DURATION = Histogram(
    "datapipelines_run_duration_seconds",
    "Duration of finished runs (start of the Job to the end).",
    ["namespace"],
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400),
)
FAILING_KEYS = Gauge(
    "datapipelines_operator_failing_keys",
    "Connections and batches whose reconcile failed the last time (each backs off).",
)
RECONCILES = Counter(
    "datapipelines_operator_reconciles_total",
    "Reconciles by kind and outcome.",
    ["kind", "outcome"],
)


def forget_connection(namespace: str, connection: str) -> None:
    """Remove the connection's series once it and all its runs are gone: per-connection series
    would otherwise grow without end (orphan runs of connections that never existed count too)."""
    with contextlib.suppress(KeyError):
        RUNS_STARTED.remove(namespace, connection)
    for phase in ("Succeeded", "Failed", "Cancelled"):
        with contextlib.suppress(KeyError):
            RUNS_FINISHED.remove(namespace, connection, phase)


def event_body(event: Event) -> dict[str, object]:
    """A core/v1 Event (pure)."""
    about = event.about
    now = now_iso()
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{about.name}.", "namespace": about.namespace},
        "involvedObject": {
            "apiVersion": about.api_version,
            "kind": about.kind,
            "name": about.name,
            "namespace": about.namespace,
            "uid": about.uid,
        },
        "type": event.type,
        "reason": event.reason,
        "message": event.message[:1024],
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "reportingInstance": COMPONENT,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }
