"""Fixtures of the operator's integration tests (helpers: opcluster.py).

The cluster comes from tests/support (`kubeconfig`); every test gets a fresh namespace with
the runner's ServiceAccount and its own `datapipelines-operator` subprocess.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from datapipelines.operator.kube import Kube
from tests.integration.operator.opcluster import (
    Cluster,
    OperatorProcess,
    apply_crds,
    delete_namespace,
    make_namespace,
)


@pytest.fixture(scope="session")
async def kube(kubeconfig: Path) -> AsyncIterator[Kube]:
    client = await Kube.connect(str(kubeconfig))
    await apply_crds(client)
    yield client
    await client.close()


@pytest.fixture
async def namespace(kube: Kube) -> AsyncIterator[str]:
    name = await make_namespace(kube)
    yield name
    await delete_namespace(kube, name)


@pytest.fixture
def cluster(kube: Kube, namespace: str) -> Cluster:
    return Cluster(kube, namespace)


@pytest.fixture
def operator_factory(
    kubeconfig: Path, namespace: str, tmp_path: Path
) -> Callable[..., OperatorProcess]:
    made: list[OperatorProcess] = []

    def factory(**env: str) -> OperatorProcess:
        op = OperatorProcess(kubeconfig, namespace, tmp_path, **env)
        made.append(op)
        return op

    yield factory  # type: ignore[misc]
    for op in made:
        op.stop()
        print(op.logs()[-20000:])


@pytest.fixture
def operator(operator_factory: Callable[..., OperatorProcess]) -> OperatorProcess:
    return operator_factory().start()
