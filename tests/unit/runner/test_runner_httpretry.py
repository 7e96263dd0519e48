"""restApi.retry: dlt's request settings from the typed spec, every wait capped (Retry-After
included), waits counted; and the "$null" spelling of an explicit null."""

from __future__ import annotations

import time

import pytest

from datapipelines.mocks import MockApi, Request, Response, route, serve
from datapipelines.resources.connection import ConnectionSpec, HttpRetry, WriteDisposition
from datapipelines.runner import httpretry
from datapipelines.runner.restconfig import nulls, rest_api_config


def test_the_typed_policy_becomes_dlts_request_settings() -> None:
    retry = HttpRetry(max_attempts=8, backoff_factor=0.5, max_delay_seconds=30, timeout_seconds=20)
    assert httpretry.environment(retry) == {
        "RUNTIME__REQUEST_MAX_ATTEMPTS": "8",
        "RUNTIME__REQUEST_BACKOFF_FACTOR": "0.5",
        "RUNTIME__REQUEST_MAX_RETRY_DELAY": "30",
        "RUNTIME__REQUEST_TIMEOUT": "20",
    }
    with pytest.raises(ValueError):
        HttpRetry(max_attempts=0)


def test_null_spelling_survives_kubectl_and_reaches_dlt_as_none() -> None:
    spec = ConnectionSpec.model_validate(
        {
            "type": "rest_api",
            "schemaName": "s",
            "source": {
                "restApi": {
                    "baseUrl": "http://127.0.0.1:9/",
                    "resourceDefaults": {"endpoint": {"params": {"x": "$null"}}},
                    "resources": [
                        {
                            "name": "items",
                            "endpoint": {
                                "paginator": {"type": "page_number", "total_path": "$null"}
                            },
                        }
                    ],
                }
            },
        }
    )
    assert spec.source.rest_api is not None
    config = rest_api_config(spec.source.rest_api, WriteDisposition.APPEND)
    assert config["resources"][0]["endpoint"]["paginator"] == {
        "type": "page_number",
        "total_path": None,
    }
    assert config["resource_defaults"]["endpoint"]["params"] == {"x": None}
    assert nulls(["$null", {"a": "$null", "b": "null"}]) == [None, {"a": None, "b": "null"}]


class Limited(MockApi):
    vendor = "limited"

    @route("GET", "/things")
    def things(self, request: Request) -> Response:
        return Response(200, [{"id": 1}])


def test_retry_after_is_honoured_up_to_the_cap_and_counted() -> None:
    from dlt.sources.helpers.requests import Client

    httpretry.install()
    httpretry.install()  # idempotent
    httpretry.WAITS.clear()
    httpretry._pacer["current"] = None  # unpaced (an earlier in-process run may have paced)
    httpretry._cap["seconds"] = 0.2
    try:
        with serve(Limited()) as api:
            api.inject(429, times=2, retry_after=3600)  # an hour, capped at 0.2 s
            client = Client(request_max_attempts=5, request_backoff_factor=0.01)
            started = time.monotonic()
            response = client.session.get(f"{api.url}/things")
            assert response.json() == [{"id": 1}]
            assert time.monotonic() - started < 5
    finally:
        httpretry._cap["seconds"] = float(HttpRetry().max_delay_seconds)
    assert httpretry.WAITS == {"429": 2}
    assert httpretry.summary() == "HTTP waits before retries: 2 (429: 2)"
    httpretry.WAITS.clear()
    assert httpretry.summary() is None


def test_the_pacer_hands_out_slots_one_interval_apart() -> None:
    now = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(round(seconds, 6))

    pacer = httpretry.Pacer(4, clock=lambda: now[0], sleep=sleep)
    for _ in range(4):  # four callers at the same instant: 0, 0.25, 0.5, 0.75 s
        pacer.wait()
    assert slept == [0.25, 0.5, 0.75]
    now[0] += 10  # idle for a while: the next caller goes at once, no burst is saved up
    pacer.wait()
    assert slept == [0.25, 0.5, 0.75] and pacer.waited == pytest.approx(1.5)


def test_requests_per_second_paces_every_request_dlt_sends() -> None:
    from dlt.sources.helpers.requests import Client

    spec = ConnectionSpec.model_validate(
        {
            "type": "rest_api",
            "schemaName": "s",
            "source": {
                "restApi": {
                    "baseUrl": "http://127.0.0.1:9/",
                    "resources": ["things"],
                    "requestsPerSecond": 20,
                }
            },
            "destination": {"type": "duckdb", "duckdb": {"path": "/data/w.duckdb"}},
        }
    )
    assert httpretry.pacing(spec) == 20
    httpretry.apply(spec)
    httpretry.install()
    try:
        with serve(Limited()) as api:
            client = Client(request_max_attempts=1)
            started = time.monotonic()
            for _ in range(6):
                client.session.get(f"{api.url}/things")
            elapsed = time.monotonic() - started
        assert elapsed >= 5 / 20  # six requests, five intervals of 50 ms between them
        assert (httpretry.summary() or "").startswith("paced at 20 requests/s (waited ")
    finally:
        httpretry._pacer["current"] = None
    with pytest.raises(ValueError, match="greater than 0"):
        ConnectionSpec.model_validate(
            {**spec.model_dump(by_alias=True), "source": {"restApi": {
                "baseUrl": "http://x/", "resources": ["t"], "requestsPerSecond": 0}}}
        )  # fmt: skip
