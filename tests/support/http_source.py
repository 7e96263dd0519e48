"""The demo HTTP source (datapipelines.runner.demo_source) served on 127.0.0.1 for tests.

    def test_x(http_source):
        http_source.state.records = 500          # change what it serves, any time
        http_source.state.fail_from_page = 3     # HTTP 500 from page 3 on
        url = http_source.url                     # http://127.0.0.1:<port>/
        source = demo_source_spec(url)            # a connection's `source` reading it

The server runs in a thread of the test process, on a free port; one per test.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from datapipelines.runner.demo_source import DemoState, make_server

__all__ = ["HttpSource", "demo_source_spec", "http_source", "serve_demo_source"]


@dataclass
class HttpSource:
    state: DemoState
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def item_requests(self) -> list[str]:
        return [r for r in self.state.requests if r.startswith("/items")]


@pytest.fixture
def http_source() -> Iterator[HttpSource]:
    with serve_demo_source(DemoState(records=1000, page_size=100)) as source:
        yield source


class serve_demo_source:
    """Context manager: the demo source on 127.0.0.1 and a free port."""

    def __init__(self, state: DemoState) -> None:
        self.state = state

    def __enter__(self) -> HttpSource:
        self.server = make_server("127.0.0.1", 0, self.state)
        host, port = self.server.server_address[:2]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return HttpSource(self.state, str(host), int(port))

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def demo_source_spec(
    url: str, page_size: int = 100, primary_key: str | None = "id"
) -> dict[str, Any]:
    """A PipelineConnection `source`: rest_api reading every page of the demo source at `url`."""
    resource: dict[str, Any] = {
        "name": "items",
        "endpoint": {
            "path": "items",
            "params": {"page_size": page_size},
            "paginator": {"type": "page_number", "base_page": 1, "total_path": "total_pages"},
        },
    }
    if primary_key is not None:
        resource["primary_key"] = primary_key
    return {"restApi": {"baseUrl": url, "resources": [resource]}}
