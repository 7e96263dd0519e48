"""The release the clients' end-to-end tests share (MCP, CLI and the console's browser tests):
installed once per session, with its connections and the demo sources they read on 127.0.0.1.

Connections: e2e-mcp-items and e2e-cli-items (enabled, one per client so their Forbid policies
never meet), and, not enabled so that run-all leaves them out: e2e-slow (a minute of work, to
cancel), e2e-ui-items (the console's runs) and e2e-broken (its source wants a token it never
gets: every run fails with a 401)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from datapipelines.runner.demo_source import DemoState
from tests.support.http_source import HttpSource, demo_source_spec, serve_demo_source
from tests.support.kube import connection, kubectl_apply
from tests.support.release import Release, install_release, uninstall_release
from tests.support.waiting import wait_for

RECORDS = 2000
SLOW_RECORDS = 3000
CONNECTIONS = ("e2e-mcp-items", "e2e-cli-items", "e2e-slow", "e2e-ui-items", "e2e-broken")


@pytest.fixture(scope="session")
def source() -> Iterator[HttpSource]:
    with serve_demo_source(DemoState(records=RECORDS, page_size=100)) as src:
        yield src


@pytest.fixture(scope="session")
def slow_source() -> Iterator[HttpSource]:
    # 10 records a page, 200 ms a page: a minute of work, time enough to cancel
    with serve_demo_source(DemoState(records=SLOW_RECORDS, page_size=10, delay_ms=200)) as src:
        yield src


@pytest.fixture(scope="session")
def locked_source() -> Iterator[HttpSource]:
    with serve_demo_source(DemoState(records=10, token="the-source-wants-this")) as src:
        yield src


@pytest.fixture(scope="session")
def clients_release(kubeconfig: Path, images: Any, crds: None) -> Iterator[Release]:
    # Kubernetes identities on: the API pod verifies tokens with its own ServiceAccount
    rel = install_release("e2e-clients", "api.kubernetesAuth.enabled=true")
    try:
        yield rel
    finally:
        uninstall_release(rel)


@pytest.fixture(scope="session")
def api(
    clients_release: Release,
    source: HttpSource,
    slow_source: HttpSource,
    locked_source: HttpSource,
) -> Release:
    """The release with its connections in the API's cache."""
    ns = clients_release.ns
    kubectl_apply(
        [
            connection("e2e-mcp-items", ns, source=demo_source_spec(source.url)),
            connection("e2e-cli-items", ns, source=demo_source_spec(source.url)),
            connection("e2e-slow", ns, enabled=False, source=demo_source_spec(slow_source.url, 10)),
            connection("e2e-ui-items", ns, enabled=False, source=demo_source_spec(source.url)),
            connection("e2e-broken", ns, enabled=False, source=demo_source_spec(locked_source.url)),
        ]
    )
    with httpx.Client(
        base_url=clients_release.url, headers={"X-API-Key": clients_release.key}
    ) as c:
        wait_for(lambda: c.get("/readyz").status_code == 200, "the API pod to be ready", 120)
        wait_for(
            lambda: {x["name"] for x in c.get("/connections").json()} >= set(CONNECTIONS),
            "the connections in the API's cache",
        )
    return clients_release
