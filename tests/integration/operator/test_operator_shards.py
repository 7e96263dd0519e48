"""Sharding by namespace label (operator.shardSelector) against the real apiserver: a shard
serves exactly the namespaces its selector matches, follows namespaces joining it, and serves
nothing — never "all namespaces" — while none matches."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from tests.integration.operator.opcluster import Cluster
from tests.support.cluster import kubectl
from tests.support.processes import NEVER_PULLED_REPO, OperatorProcess, _async
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.asyncio(loop_scope="session")]

STUCK = {"image": f"{NEVER_PULLED_REPO}:none"}
SERVING_NONE = "serving none until one does"


async def test_a_shard_serves_nothing_until_a_namespace_joins_it(
    cluster: Cluster, operator_factory: Callable[..., OperatorProcess]
) -> None:
    label = f"shard-{uuid.uuid4().hex[:6]}"
    selector = f"datapipelines.io/test-shard={label}"
    operator = operator_factory(
        DATAPIPELINES_NAMESPACE="",  # all namespaces … narrowed to the shard's
        DATAPIPELINES_SHARD_SELECTOR=selector,
        DATAPIPELINES_SHARD_POLL_SECONDS="1",
        DATAPIPELINES_LEASE_NAMESPACE=cluster.ns,
    ).start()
    await wait_until(
        lambda: _async(SERVING_NONE in operator.current_log()), 60, what="the empty shard idle"
    )
    await cluster.connection("demo", runner=STUCK)
    await cluster.run("demo-1", "demo")
    # kopf never started: nothing in the cluster is served while the shard has no namespace
    assert "operator serving" not in operator.current_log()
    assert await cluster.phase("demo-1") is None

    kubectl("label", "namespace", cluster.ns, f"datapipelines.io/test-shard={label}")
    await wait_until(
        lambda: _async(f"operator serving {cluster.ns}" in operator.current_log()),
        30,
        what="the shard serving the namespace that joined it",
    )
    await cluster.wait_phase("demo-1", "Running", seconds=30)
    assert [j["metadata"]["name"] for j in await cluster.jobs()] == ["demo-1"]
