"""A small paginated JSON HTTP source for demos, tests and the benchmark (stdlib only).

`GET /items?page=P&page_size=S[&updated_since=ISO]` answers
`{"items": [...], "page": P, "page_size": S, "total": N, "total_pages": T}`; a page past the end
has an empty `items` list. Record `i` (1-based) has `id = i` and `updated_at = 2024-01-01T00:00:00Z
+ i seconds`, so `updated_since` (inclusive) is a cursor. Any other path is a 404.

Options: a bearer token (401 without it), a per-page delay (to make a run slow enough to cancel),
HTTP 500 from page K on (to test failures) and a `tags` list of two per record (nested data).
Tests change `DemoState` while it serves.

    python -m datapipelines.runner.demo_source --port 8765 --records 1000 --page-size 100
"""

from __future__ import annotations

import argparse
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

log = logging.getLogger("datapipelines.demo_source")

EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
CATEGORIES = ("books", "games", "garden", "music", "tools")


@dataclass
class DemoState:
    """What the server serves; tests may change it between (or during) runs."""

    records: int = 1000
    page_size: int = 100
    max_page_size: int = 10_000
    delay_ms: int = 0
    token: str | None = None
    fail_from_page: int | None = None
    fail_status: int = 500
    nested: bool = False  # add a `tags` list to each record (a nested table in the destination)
    extra_fields: dict[str, Any] = field(default_factory=dict)  # added to (or replacing) fields
    requests: list[str] = field(default_factory=list)
    first_request_at: float | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


def timestamp(i: int) -> str:
    return (EPOCH + timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%SZ")


def record(i: int) -> dict[str, Any]:
    """The deterministic record `i`: 10 fields of mixed types."""
    return {
        "id": i,
        "updated_at": timestamp(i),
        "name": f"item-{i:07d}",
        "category": CATEGORIES[i % len(CATEGORIES)],
        "price": round((i % 997) * 1.25, 2),
        "quantity": i % 50,
        "active": i % 3 != 0,
        "created_at": timestamp(i // 2),
        "description": f"Demo item number {i} for the datapipelines runner",
        "score": (i * 7919) % 10_000 / 100.0,
    }


def first_id_since(updated_since: str | None) -> int:
    """The first id whose `updated_at` is >= `updated_since` (the cursor is inclusive)."""
    if not updated_since:
        return 1
    since = datetime.fromisoformat(updated_since.replace("Z", "+00:00"))
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    seconds = (since - EPOCH).total_seconds()
    return max(1, int(seconds) + (0 if seconds == int(seconds) else 1))


def render_page(state: DemoState, query: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
    """(status, body) for one `/items` request; pure apart from reading `state`."""
    try:
        page = int(query.get("page", ["1"])[0])
        size = int(query.get("page_size", [str(state.page_size)])[0])
        start_id = first_id_since(query.get("updated_since", [None])[0])
    except ValueError as exc:
        return 400, {"error": f"bad query: {exc}"}
    if page < 1 or not 1 <= size <= state.max_page_size:
        return 400, {"error": "page must be >= 1 and page_size within limits"}
    if state.fail_from_page is not None and page >= state.fail_from_page:
        return state.fail_status, {"error": f"injected failure on page {page}"}
    total = max(0, state.records - start_id + 1)
    first = start_id + (page - 1) * size
    last = min(state.records, first + size - 1)
    items = [record(i) for i in range(first, last + 1)]
    if state.extra_fields:
        for item in items:
            item.update(state.extra_fields)
    if state.nested:
        for item in items:
            item["tags"] = [{"tag": item["category"]}, {"tag": f"t{item['id'] % 4}"}]
    total_pages = (total + size - 1) // size
    body = {"items": items, "page": page, "page_size": size, "total": total}
    body["total_pages"] = total_pages
    return 200, body


class DemoHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "datapipelines-demo-source/1"
    state: DemoState  # set on the subclass made by make_server

    def do_GET(self) -> None:
        state = self.state
        url = urlsplit(self.path)
        if url.path.rstrip("/") == "/healthz":  # probes: no token, not counted as a request
            self._send(200, {"ok": True})
            return
        with state.lock:
            if state.first_request_at is None:
                state.first_request_at = time.time()
            state.requests.append(self.path)
        if state.token is not None and self.headers.get("Authorization") != f"Bearer {state.token}":
            self._send(401, {"error": "missing or wrong bearer token"})
            return
        if url.path.rstrip("/") != "/items":
            self._send(404, {"error": f"no resource {url.path}"})
            return
        if state.delay_ms:
            time.sleep(state.delay_ms / 1000)
        status, body = render_page(state, parse_qs(url.query))
        self._send(status, body)

    def _send(self, status: int, body: dict[str, Any]) -> None:
        payload = json.dumps(body, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)


class DemoServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError):
            return  # a client that went away (a cancelled run, a closed keep-alive connection)
        log.exception("error serving %s", client_address)


def make_server(host: str, port: int, state: DemoState) -> ThreadingHTTPServer:
    """A server bound to (host, port); port 0 picks a free one (see `server.server_address`)."""
    handler = type("BoundDemoHandler", (DemoHandler,), {"state": state})
    server = DemoServer((host, port), handler)
    server.daemon_threads = True
    return server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="datapipelines-demo-source", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--page-size", type=int, default=100, help="default page size")
    parser.add_argument("--delay-ms", type=int, default=0, help="delay before each page")
    parser.add_argument("--token", default=None, help="require this bearer token")
    parser.add_argument("--token-file", default=None, help="read the bearer token from a file")
    parser.add_argument("--fail-from-page", type=int, default=None, help="HTTP 500 from page K")
    parser.add_argument(
        "--nested", action="store_true", help="a `tags` list per record (a nested table)"
    )
    args = parser.parse_args(argv)
    token = args.token
    if args.token_file:
        with open(args.token_file, encoding="utf-8") as f:
            token = f.read().strip()
    state = DemoState(
        records=args.records,
        page_size=args.page_size,
        delay_ms=args.delay_ms,
        token=token,
        fail_from_page=args.fail_from_page,
        nested=args.nested,
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    server = make_server(args.host, args.port, state)
    host, port = server.server_address[:2]
    log.info("demo source on http://%s:%s/items (%d records)", host, port, args.records)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
