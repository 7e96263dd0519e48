"""Shared fixtures. Keep this file small: fixtures live in tests/support/ and are imported here."""

from tests.support.cluster import (  # noqa: F401
    _cluster_markers,
    images,
    kubeconfig,
    pytest_collection_finish,
)
from tests.support.http_source import *  # noqa: F403
from tests.support.kube import crds  # noqa: F401
from tests.support.postgres import *  # noqa: F403
