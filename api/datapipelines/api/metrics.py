"""Prometheus metrics of the API: request counts and latency per route, cache state."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from datapipelines.api.store import PipelineStore

#: Apiserver requests of this process (watches, lists, writes), by verb, resource and code.
APISERVER_REQUESTS = Counter(
    "datapipelines_api_apiserver_requests_total",
    "Kubernetes apiserver requests of the API by verb, resource and HTTP status code "
    "(`error`: no answer, a transport failure or the deadline).",
    ["verb", "resource", "code"],
    registry=None,
)


def count_request(verb: str, resource: str, code: int | str) -> None:
    APISERVER_REQUESTS.labels(verb, resource, str(code)).inc()


def code_of(exc: BaseException) -> int | str:
    """The status code of a failed apiserver call, `error` when there was no answer."""
    status = getattr(exc, "status", None)
    return status if isinstance(status, int) else "error"


class Metrics:
    """One registry per app, so several apps (tests) never collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(APISERVER_REQUESTS)
        # the process's own figures (process_resident_memory_bytes, CPU, open fds), as every
        # Prometheus client exports them
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)

        self.requests = Counter(
            "datapipelines_api_requests_total",
            "HTTP requests by method, route template and status code.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "datapipelines_api_request_duration_seconds",
            "HTTP request latency by method and route template.",
            ["method", "route"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600),
        )
        self.sync_waits = Gauge(
            "datapipelines_api_sync_runs_waiting",
            "Synchronous run requests waiting for their run to end.",
            registry=self.registry,
        )

    def watch_store(self, store: PipelineStore) -> None:
        self.registry.register(_StoreCollector(store))


class _StoreCollector(Collector):
    def __init__(self, store: PipelineStore) -> None:
        self.store = store

    def collect(self) -> Iterator[GaugeMetricFamily]:
        ready, _ = self.store.readiness()
        yield GaugeMetricFamily(
            "datapipelines_api_cache_synced",
            "1 when the watch cache is in sync with the Kubernetes API.",
            value=1 if ready else 0,
        )


class MetricsMiddleware:
    """Pure ASGI middleware (no buffering, no task juggling) timing every HTTP request."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route: Any = scope.get("route")
            template = getattr(route, "path", None) or "<unmatched>"
            method = scope.get("method", "")
            self.metrics.requests.labels(method, template, str(status)).inc()
            self.metrics.latency.labels(method, template).observe(time.perf_counter() - start)
