"""Kube: every create, update and patch names this replica as its fieldManager (kube.py)."""

from __future__ import annotations

from typing import Any

import pytest

from datapipelines.operator.kube import FIELD_MANAGER_MAX, Kube, TokenBucket, field_manager


class RecordingApi:
    """Stands in for kubernetes_asyncio's ApiClient: records each call's query parameters."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[tuple[str, Any]]]] = []

    async def call_api(
        self, path: str, method: str, **kwargs: Any
    ) -> tuple[dict[str, Any], int, dict[str, str]]:
        self.calls.append((method, kwargs["query_params"]))
        return {}, 201 if method == "POST" else 200, {}


def test_field_manager_names_the_replica() -> None:
    assert field_manager("replica-a") == "datapipelines-operator/replica-a"
    assert field_manager("") == "datapipelines-operator"


def test_field_manager_is_valid_for_the_apiserver() -> None:
    name = field_manager("x" * 300 + "\n\t")
    assert len(name) == FIELD_MANAGER_MAX and name.isprintable()
    assert field_manager("pod\x00-1") == "datapipelines-operator/pod-1"


@pytest.mark.parametrize(
    ("method", "sent"), [("POST", True), ("PUT", True), ("PATCH", True), ("DELETE", False)]
)
async def test_writes_carry_the_field_manager(method: str, sent: bool) -> None:
    api = RecordingApi()
    kube = Kube(api, 5)  # type: ignore[arg-type]
    kube.field_manager = "datapipelines-operator/replica-a"
    await kube.request(method, "/apis/batch/v1/namespaces/ns/jobs", query={"dryRun": None})
    ((_, params),) = api.calls
    expected = [("fieldManager", "datapipelines-operator/replica-a")] if sent else []
    assert params == expected


async def test_reads_and_unnamed_clients_send_no_field_manager() -> None:
    api = RecordingApi()
    kube = Kube(api, 5)  # type: ignore[arg-type]
    await kube.request("PATCH", "/api/v1/namespaces/ns/pods/p", body={})
    kube.field_manager = "datapipelines-operator/replica-a"
    await kube.request("GET", "/api/v1/namespaces/ns/pods", query={"labelSelector": "a=b"})
    assert [params for _, params in api.calls] == [[], [("labelSelector", "a=b")]]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_allows_the_burst_then_paces_at_the_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=10, burst=3, clock=clock)
    assert [bucket.reserve() for _ in range(3)] == [0.0, 0.0, 0.0]
    # the next ones wait their turn: 0.1 s apart at 10 per second
    assert bucket.reserve() == pytest.approx(0.1)
    assert bucket.reserve() == pytest.approx(0.2)
    clock.now = 10.0  # idle: refilled up to the burst, never beyond
    assert [bucket.reserve() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.reserve() == pytest.approx(0.1)


async def test_writes_are_paced_and_lease_calls_and_reads_are_not() -> None:
    api = RecordingApi()
    kube = Kube(api, 5)  # type: ignore[arg-type]
    clock = Clock()
    kube.limiter = TokenBucket(rate=1, burst=1, clock=clock)
    await kube.request("PATCH", "/api/v1/namespaces/n/pods/p")  # the one token
    assert kube.limiter.tokens == 0
    await kube.request("GET", "/api/v1/namespaces/n/pods/p")
    await kube.request("PUT", "/apis/coordination.k8s.io/v1/namespaces/n/leases/l", write=False)
    assert kube.limiter.tokens == 0  # neither took a token
    assert len(api.calls) == 3


async def test_requests_are_counted_by_their_status_code() -> None:
    from prometheus_client import REGISTRY

    def count(code: str) -> float:
        labels = {"verb": "create", "resource": "jobs", "code": code}
        value = REGISTRY.get_sample_value("datapipelines_operator_apiserver_requests_total", labels)
        return value or 0.0

    before = count("201")
    await Kube(RecordingApi(), 5).request("POST", "/apis/batch/v1/namespaces/ns/jobs", body={})  # type: ignore[arg-type]
    assert count("201") == before + 1 and count("2xx") == 0
