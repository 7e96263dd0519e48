"""Fixtures of the trust-boundary tests: the chart's rights and policies in a namespace."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.trust.chartkit import Release, installed


@pytest.fixture(scope="module")
def release(kubeconfig: Path, crds: None) -> Iterator[Release]:
    with installed("dp-trust") as rel:
        yield rel
