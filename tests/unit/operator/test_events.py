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


def test_last_success_gauge_reads_the_index_at_scrape_time() -> None:
    from types import SimpleNamespace

    from prometheus_client import CollectorRegistry

    from datapipelines.operator.events import LastSuccessCollector
    from datapipelines.resources.times import parse_time

    when = parse_time("2026-12-08T01:00:00Z")
    views = {
        ("a", "ok"): SimpleNamespace(status=SimpleNamespace(last_success_time=when)),
        ("a", "never"): SimpleNamespace(status=SimpleNamespace(last_success_time=None)),
    }
    store = SimpleNamespace(
        connection_keys=lambda: list(views), connection=lambda ns, name: views[(ns, name)]
    )
    collector = LastSuccessCollector()
    registry = CollectorRegistry()
    registry.register(collector)
    name = "datapipelines_connection_last_success_timestamp_seconds"
    assert registry.get_sample_value(name, {"namespace": "a", "connection": "ok"}) is None
    collector.store = store  # type: ignore[assignment]
    assert when is not None
    assert registry.get_sample_value(name, {"namespace": "a", "connection": "ok"}) == (
        when.timestamp()
    )
    assert registry.get_sample_value(name, {"namespace": "a", "connection": "never"}) is None
