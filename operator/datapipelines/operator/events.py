"""Kubernetes Events and the operator's Prometheus metrics of runs."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from datapipelines.resources.times import now_iso

from .reconcile.actions import Event

if TYPE_CHECKING:
    from .store import Store

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


class LastSuccessCollector(Collector):
    """``datapipelines_connection_last_success_timestamp_seconds`` per connection of this
    shard, read from the operator's index at scrape time (``status.lastSuccessTime``): an
    alert on ``time() - …`` fires when nothing succeeded for a while, whatever the cause (a
    suspended schedule, failing runs, an operator down — then the series goes absent)."""

    def __init__(self) -> None:
        self.store: Store | None = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "datapipelines_connection_last_success_timestamp_seconds",
            "When the connection's newest successful run ended (unix seconds).",
            labels=["namespace", "connection"],
        )
        store = self.store
        if store is not None:
            for namespace, name in store.connection_keys():
                view = store.connection(namespace, name)
                when = view.status.last_success_time if view is not None else None
                if when is not None:
                    family.add_metric([namespace, name], when.timestamp())
        yield family


LAST_SUCCESS = LastSuccessCollector()
REGISTRY.register(LAST_SUCCESS)


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
