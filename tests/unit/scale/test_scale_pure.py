"""The scale harness's pure parts: percentiles, /proc and Prometheus parsing, the fleet's
names and manifests, the report's verdicts."""

from __future__ import annotations

import os

from datapipelines.resources.connection import ConnectionSpec
from tests.scale.fleet import SHARD_LABEL, Fleet, connection_manifest
from tests.scale.harness import Figures, ScaleParams
from tests.scale.probe import metric_samples, per_run, request_counts, sample
from tests.scale.report import lines, met
from tests.scale.stats import Latency, percentile


def test_percentile_is_nearest_rank() -> None:
    values = list(range(1, 101))
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile([7.0], 99) == 7.0


def test_latency_in_milliseconds() -> None:
    lat = Latency.of([0.010, 0.020, 0.030])
    assert (lat.n, lat.p50, lat.p99, lat.max) == (3, 20.0, 30.0, 30.0)


def test_sample_reads_this_process() -> None:
    s = sample(os.getpid())
    assert s is not None and s.rss_mb > 1 and s.peak_rss_mb >= s.rss_mb and s.cpu_seconds > 0
    assert sample(2**22 + 12345) is None


METRICS = """# HELP x
datapipelines_operator_apiserver_requests_total{code="201",resource="jobs",verb="create"} 10.0
datapipelines_operator_apiserver_requests_total{code="409",resource="jobs",verb="create"} 1.0
datapipelines_operator_apiserver_requests_total{code="200",resource="pods",verb="watch"} 3.0
"""


def test_prometheus_text() -> None:
    name = "datapipelines_operator_apiserver_requests_total"
    assert len(metric_samples(METRICS, name)) == 3
    assert request_counts(METRICS, name) == {"create jobs": 11.0, "watch pods": 3.0}
    assert per_run("create jobs") and per_run("patch pipelineruns/status")
    assert not per_run("watch pods") and not per_run("update leases")


def test_fleet_spreads_connections_and_namespaces_over_shards() -> None:
    fleet = Fleet(tag="x", connections=10, namespaces=4, shards=2)
    placed = fleet.placement()
    assert len({name for _, name in placed}) == 10  # unique across namespaces
    assert {ns for ns, _ in placed} == set(fleet.namespace_names())
    shards = [fleet.namespace_manifest(k)["metadata"]["labels"][SHARD_LABEL] for k in range(4)]
    assert shards == ["0", "1", "0", "1"]
    assert fleet.shard_selector(1) == f"{SHARD_LABEL}=1"


def test_connection_manifest_is_a_valid_spec() -> None:
    body = connection_manifest("x-c00001", "ns", run_seconds=1.5, schedule="* * * * *")
    spec = ConnectionSpec.model_validate(body["spec"])
    assert spec.schedule == "* * * * *"
    env = {e["name"]: e["value"] for e in body["spec"]["runner"]["env"]}
    assert env["RUNNER__KWOK_DURATION"] == "1500ms"


def test_report_marks_misses() -> None:
    good = Figures(
        params=ScaleParams(connections=1000),
        dispatch={"burst": Latency.of([0.05, 0.1])},
        reads={"idle": {"GET /connections": Latency.of([0.005]), "direct list": Latency.of([0.1])}},
        tasks=2,
        answered=2,
        succeeded=2,
        requests_per_run=5,
        processes={
            "api": {
                "rss_mb": 90,
                "peak_rss_mb": 100,
                "cpu_seconds_total": 1,
                "cpu_seconds_burst": 1,
            }
        },
    )
    assert met(good)
    text = "\n".join(lines(good))
    assert "MISS" not in text and "20.0x the direct list" in text
    slow = good.model_copy(update={"dispatch": {"burst": Latency.of([0.3])}})
    assert not met(slow)
    assert "MISS" in "\n".join(lines(slow))
    lost = good.model_copy(update={"lost": ["r1"]})
    assert not met(lost)
