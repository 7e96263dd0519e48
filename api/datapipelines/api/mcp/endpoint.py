"""The `/mcp` endpoint: the SDK's MCP server, its streamable HTTP handler and the API key check.

Streamable HTTP in *stateless* mode: every POST stands alone (no session kept in memory), so any
API replica can answer any request and a restart loses nothing; a tool's progress notifications
stream back on its own POST's response (SSE). DNS-rebinding protection (a Host/Origin allow-list
the SDK applies to servers on localhost) is off: the API is reached through Services and Ingress
under any host name, and the X-API-Key check guards it as it guards every REST route.

The SDK is imported, and its server and session manager made, on the first request to `/mcp`
(~30 MB that an API nobody talks MCP to never spends). The session manager's task group then
lives in a task of the app's lifespan, which ends it at shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import FastAPI, HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from datapipelines.api.deps import API_KEY_HEADER, Gate, bearer_token
from datapipelines.api.mcp.deps import ToolDeps

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer
    from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

MCP_PATH = "/mcp"
SERVER_NAME = "datapipelines"
VERSION = "0.1.0"

log = logging.getLogger(__name__)

# One INFO line per request ("Terminating session: None") in stateless mode is noise.
_CHATTY_LOGGERS = ("mcp.server.streamable_http",)


class ApiKeyGate:
    """ASGI wrapper applying the REST routes' rule (`deps.Gate`) first: 401 for a missing or
    wrong key or a rejected token, 500 when the server has no key, with the same bodies; the
    caller goes in the request's state, where the tools find it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.route: Route | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.route is not None:  # as FastAPI does for its own routes: metrics use its path
            scope["route"] = self.route
        if scope["type"] == "http":
            request = Request(scope)
            gate: Gate = request.app.state.gate
            try:
                request.state.caller = await gate.caller(
                    request.headers.get(API_KEY_HEADER),
                    bearer_token(request.headers.get("authorization")),
                )
            except HTTPException as exc:
                response = JSONResponse(
                    {"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class McpEndpoint:
    """The MCP server of one app. `mount(app)` adds the route, `running()` goes in the lifespan."""

    def __init__(self, deps: ToolDeps) -> None:
        self._deps = deps
        self.server: MCPServer | None = None  # made on first use
        self._manager: StreamableHTTPSessionManager | None = None
        self._wanted: asyncio.Event | None = None  # set by the first request of a lifespan
        self._started: asyncio.Future[StreamableHTTPSessionManager] | None = None
        self.asgi = ApiKeyGate(self._handle)
        self.route = Route(
            MCP_PATH, endpoint=self.asgi, methods=["GET", "POST", "DELETE"], include_in_schema=False
        )
        self.asgi.route = self.route
        for name in _CHATTY_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)

    def mount(self, app: FastAPI) -> None:
        app.router.routes.append(self.route)

    def build_server(self) -> MCPServer:
        """The SDK's server with the tools (imports the SDK)."""
        if self.server is None:
            from mcp.server.mcpserver import MCPServer

            from datapipelines.api.mcp.tools import INSTRUCTIONS, register_tools

            server = MCPServer(
                name=SERVER_NAME,
                title="datapipelines",
                description="Run and inspect the data-sync pipelines of a Kubernetes namespace.",
                instructions=INSTRUCTIONS,
                version=VERSION,
            )
            register_tools(server, self._deps)
            self.server = server
        return self.server

    def _new_manager(self) -> StreamableHTTPSessionManager:
        """A session manager runs only once, so each lifespan gets a new one (test clients
        start an app's lifespan many times). streamable_http_app() makes it; the Starlette app
        it returns is not used: the route goes straight into the FastAPI app, under its
        middleware and metrics."""
        from mcp.server.transport_security import TransportSecuritySettings

        server = self.build_server()
        server.streamable_http_app(
            streamable_http_path=MCP_PATH,
            stateless_http=True,
            json_response=False,
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        )
        return server.session_manager

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Serve MCP while inside (the app's lifespan): a task waits for the first MCP request,
        then runs the session manager until the lifespan ends."""
        wanted = asyncio.Event()
        started: asyncio.Future[StreamableHTTPSessionManager] = (
            asyncio.get_running_loop().create_future()
        )
        stop = asyncio.Event()

        async def serve() -> None:
            await wanted.wait()
            try:
                manager = self._new_manager()
                async with manager.run():
                    started.set_result(manager)
                    await stop.wait()
            except Exception as exc:
                if not started.done():
                    started.set_exception(exc)
                raise

        task = asyncio.create_task(serve(), name="mcp-session-manager")
        self._wanted, self._started = wanted, started
        try:
            yield
        finally:
            self._wanted = self._started = None
            stop.set()
            wanted.set()  # never wanted: the task ends at once
            if not started.done():
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                try:
                    await task
                except Exception as exc:  # reported to the requests that waited for it
                    log.debug("the MCP session manager had failed", extra={"error": str(exc)})

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        wanted, started = self._wanted, self._started
        if wanted is None or started is None:
            body = {"detail": "the MCP endpoint is not running (the app has not started)"}
            await JSONResponse(body, status_code=503)(scope, receive, send)
            return
        wanted.set()
        try:
            manager = await asyncio.shield(started)
        except Exception as exc:
            log.error("the MCP endpoint failed to start", extra={"error": str(exc)})
            body = {"detail": f"the MCP endpoint failed to start: {exc}"}
            await JSONResponse(body, status_code=503)(scope, receive, send)
            return
        await manager.handle_request(scope, receive, send)
