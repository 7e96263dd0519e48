"""Fixtures of the API's integration tests (helpers: apikit.py and tests/support/)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.api.apikit import API_KEY, OLD_API_KEY, ApiServer, serving
from tests.support.kube import create_namespace, delete_namespace


@pytest.fixture(scope="module")
def namespace(crds: None) -> Iterator[str]:
    ns = create_namespace("api")
    yield ns
    delete_namespace(ns)


@pytest.fixture(scope="module")
def api(namespace: str) -> Iterator[ApiServer]:
    """The API as a real process (the console script) serving `namespace`."""
    with serving(ApiServer(namespace, key=f"{API_KEY},{OLD_API_KEY}")) as server:
        yield server
