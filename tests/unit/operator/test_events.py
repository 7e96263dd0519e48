"""The operator's metrics of runs: series end with their connection."""

from __future__ import annotations

from prometheus_client import REGISTRY

from datapipelines.operator import events


def test_a_gone_connections_metric_series_are_removed() -> None:
    events.RUNS_STARTED.labels("ns-gone", "c").inc()
    events.RUNS_FINISHED.labels("ns-gone", "c", "Failed").inc()
    labels = {"namespace": "ns-gone", "connection": "c"}
    assert REGISTRY.get_sample_value("datapipelines_runs_started_total", labels) == 1
    events.forget_connection("ns-gone", "c")
    events.forget_connection("ns-gone", "c")  # twice is fine
    assert REGISTRY.get_sample_value("datapipelines_runs_started_total", labels) is None
    assert (
        REGISTRY.get_sample_value(
            "datapipelines_runs_finished_total", {**labels, "phase": "Failed"}
        )
        is None
    )
