"""Fixtures of the operator's integration tests (helpers: opcluster.py and tests/support/).

The cluster comes from tests/support (`kubeconfig`, `crds`); every test gets a fresh namespace
with the runner's ServiceAccount and its own `datapipelines-operator` subprocess.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.operator.opcluster import Cluster
from tests.support.apiclient import TestKube
from tests.support.kube import create_namespace, delete_namespace
from tests.support.processes import OperatorProcess


@pytest.fixture(scope="session")
async def kube(kubeconfig: Path, crds: None) -> AsyncIterator[TestKube]:
    client = await TestKube.open(kubeconfig)
    yield client
    await client.close()


@pytest.fixture
def namespace(crds: None) -> Iterator[str]:
    name = create_namespace("dp-op")
    yield name
    delete_namespace(name)


@pytest.fixture
def cluster(kube: TestKube, namespace: str) -> Cluster:
    return Cluster(kube, namespace)


@pytest.fixture
def operator_factory(
    kubeconfig: Path, namespace: str, tmp_path: Path
) -> Callable[..., OperatorProcess]:
    made: list[OperatorProcess] = []

    def factory(**env: str) -> OperatorProcess:
        op = OperatorProcess(namespace, kubeconfig=kubeconfig, log_dir=tmp_path, **env)
        made.append(op)
        return op

    yield factory  # type: ignore[misc]
    for op in made:
        op.stop()
        print(op.logs()[-20000:])


@pytest.fixture
def operator(operator_factory: Callable[..., OperatorProcess]) -> OperatorProcess:
    return operator_factory().start()
