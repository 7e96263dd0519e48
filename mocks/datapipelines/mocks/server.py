"""A framework for local mocks of vendor APIs: stdlib HTTP on 127.0.0.1, routes by method and
path pattern, vendor-shaped auth and error bodies, and faults a test injects (429 with
Retry-After, 5xx, slow responses) — so each source is tested against the shapes, pagination,
auth, errors and rate limits its vendor documents, never against the internet.

    class Acme(MockApi):
        vendor = "acme"

        def authorize(self, request: Request) -> Response | None:  # None: allowed
            return None if request.bearer == "acme-token" else self.error(401, "bad token")

        @route("GET", "/v1/things")
        def things(self, request: Request) -> Response:
            return Response(200, {"results": self.dataset.things})

    with serve(Acme(rows=100)) as api:        # api.url: http://127.0.0.1:<port>
        api.inject(status=429, times=2, retry_after=1)   # the next 2 requests get 429
        ...
        api.stats.requests                     # every request seen (method, path, query)

Controls over HTTP (for the CLI and tests in other processes), under ``/__mock__/``:
``GET /__mock__/stats``, ``POST /__mock__/inject`` (JSON body: status, times, retry_after,
path_prefix, delay), ``POST /__mock__/reset``.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, TypeVar
from urllib.parse import parse_qs, urlsplit

Handler = Callable[[Any, "Request"], "Response"]
H = TypeVar("H", bound=Handler)


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes = b""
    params: dict[str, str] = field(default_factory=dict)  # from the route's {placeholders}

    def arg(self, name: str, default: str | None = None) -> str | None:
        """The first value of a query parameter."""
        values = self.query.get(name)
        return values[0] if values else default

    def int_arg(self, name: str, default: int) -> int:
        value = self.arg(name)
        try:
            return int(value) if value is not None else default
        except ValueError:
            return default

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    @property
    def bearer(self) -> str | None:
        auth = self.headers.get("authorization", "")
        return auth[7:] if auth.startswith("Bearer ") else None


@dataclass
class Response:
    status: int
    body: Any = None  # JSON-serialisable, or bytes/str sent as is
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Fault:
    status: int
    times: int = 1
    retry_after: float | None = None
    path_prefix: str = ""
    delay: float = 0.0


@dataclass
class Stats:
    requests: list[tuple[str, str, dict[str, list[str]]]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)

    def paths(self, prefix: str = "") -> list[str]:
        return [p for _, p, _ in self.requests if p.startswith(prefix)]

    def count(self, prefix: str = "") -> int:
        return len(self.paths(prefix))


def route(method: str, pattern: str) -> Callable[[H], H]:
    """Register a handler for ``method`` and ``pattern`` (``{name}`` matches one path segment)."""

    def mark(fn: H) -> H:
        fn.__route__ = (method.upper(), pattern)  # type: ignore[attr-defined]
        return fn

    return mark


class MockApi:
    """Base of every vendor mock. Subclasses set ``vendor``, implement ``authorize`` and the
    routes, and may override ``error`` for the vendor's error shape."""

    vendor: ClassVar[str] = ""
    _routes: ClassVar[list[tuple[str, re.Pattern[str], str]]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._routes = []
        for klass in reversed(cls.__mro__):
            for name, fn in vars(klass).items():
                spec = getattr(fn, "__route__", None)
                if spec is not None:
                    method, pattern = spec
                    regex = "^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern) + "$"
                    cls._routes.append((method, re.compile(regex), name))

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.faults: list[Fault] = []
        self.stats = Stats()
        self.url = ""

    # ------------------------------------------------------------------ for subclasses

    def authorize(self, request: Request) -> Response | None:
        """None when the request may proceed, else the vendor's 401/403 response."""
        return None

    def error(self, status: int, message: str) -> Response:
        """The vendor's error body for ``status``."""
        return Response(status, {"status": status, "message": message})

    def rate_limited(self, retry_after: float | None) -> Response:
        headers = {} if retry_after is None else {"Retry-After": f"{retry_after:g}"}
        response = self.error(429, "rate limit exceeded")
        response.headers.update(headers)
        return response

    # ------------------------------------------------------------------ faults

    def inject(
        self,
        status: int = 429,
        *,
        times: int = 1,
        retry_after: float | None = None,
        path_prefix: str = "",
        delay: float = 0.0,
    ) -> None:
        """The next ``times`` requests (under ``path_prefix``) answer ``status`` (after
        ``delay`` seconds; status 0: only the delay, then the normal answer)."""
        with self.lock:
            self.faults.append(Fault(status, times, retry_after, path_prefix, delay))

    def reset(self) -> None:
        with self.lock:
            self.faults.clear()
            self.stats = Stats()

    def _fault_for(self, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.times > 0 and path.startswith(fault.path_prefix):
                    fault.times -= 1
                    if fault.times == 0:
                        self.faults.remove(fault)
                    return fault
        return None

    # ------------------------------------------------------------------ dispatch

    def handle(self, request: Request) -> Response:
        if request.path.startswith("/__mock__/"):
            return self._control(request)
        with self.lock:
            self.stats.requests.append((request.method, request.path, request.query))
        fault = self._fault_for(request.path)
        if fault is not None:
            if fault.delay:
                time.sleep(fault.delay)
            if fault.status == 429:
                return self.rate_limited(fault.retry_after)
            if fault.status:
                return self.error(fault.status, f"injected {fault.status}")
        denied = self.authorize(request)
        if denied is not None:
            return denied
        for method, regex, name in self._routes:
            match = regex.match(request.path)
            if match and method == request.method:
                request.params = match.groupdict()
                handler: Handler = getattr(type(self), name)
                return handler(self, request)
        return self.error(404, f"no route {request.method} {request.path}")

    def _control(self, request: Request) -> Response:
        if request.path == "/__mock__/stats":
            with self.lock:
                return Response(
                    200,
                    {
                        "vendor": self.vendor,
                        "requests": [
                            {"method": m, "path": p, "query": q} for m, p, q in self.stats.requests
                        ],
                        "statuses": self.stats.statuses,
                    },
                )
        if request.path == "/__mock__/inject" and request.method == "POST":
            body = request.json() or {}
            self.inject(
                int(body.get("status", 429)),
                times=int(body.get("times", 1)),
                retry_after=body.get("retry_after"),
                path_prefix=str(body.get("path_prefix", "")),
                delay=float(body.get("delay", 0.0)),
            )
            return Response(204)
        if request.path == "/__mock__/reset" and request.method == "POST":
            self.reset()
            return Response(204)
        return Response(404, {"error": "unknown control"})


class _Handler(BaseHTTPRequestHandler):
    api: MockApi
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out at once (no 40 ms delayed ACK)

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        request = Request(
            method=self.command,
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=self.rfile.read(length) if length else b"",
        )
        try:
            response = self.api.handle(request)
        except Exception as exc:  # a bug in a mock is a 500 the test sees, not a hang
            response = Response(500, {"error": f"mock failed: {type(exc).__name__}: {exc}"})
        if not request.path.startswith("/__mock__/"):
            with self.api.lock:
                self.api.stats.statuses.append(response.status)
        if isinstance(response.body, bytes):
            payload, ctype = response.body, "application/octet-stream"
        elif isinstance(response.body, str):
            payload, ctype = response.body.encode(), "text/plain; charset=utf-8"
        elif response.body is None:
            payload, ctype = b"", "application/json"
        else:
            payload, ctype = json.dumps(response.body).encode(), "application/json"
        self.send_response(response.status)
        headers = {"Content-Type": ctype, **response.headers, "Content-Length": str(len(payload))}
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if payload and self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that closes its connection mid-response (a retry, a timeout) is normal."""
        import sys

        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


@contextmanager
def serve(api: MockApi, host: str = "127.0.0.1", port: int = 0) -> Iterator[MockApi]:
    """Serve ``api`` in a thread on ``host`` (loopback) and a free port; ``api.url`` is set."""
    handler = type("Handler", (_Handler,), {"api": api})
    server = _QuietServer((host, port), handler)
    server.daemon_threads = True
    api.url = f"http://{host}:{server.server_address[1]}"
    thread = threading.Thread(
        target=server.serve_forever, args=(0.05,), daemon=True, name=f"mock-{api.vendor}"
    )
    thread.start()
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
