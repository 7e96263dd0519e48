"""The `/mcp` endpoint: the SDK's MCP server, its streamable HTTP handler and the API key check.

Streamable HTTP in *stateless* mode: every POST stands alone (no session kept in memory), so any
API replica can answer any request and a restart loses nothing; a tool's progress notifications
stream back on its own POST's response (SSE). DNS-rebinding protection (a Host/Origin allow-list
the SDK applies to servers on localhost) is off: the API is reached through Services and Ingress
under any host name, and the X-API-Key check guards it as it guards every REST route.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, HTTPException
from mcp.server.mcpserver import MCPServer
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from datapipelines.api.deps import API_KEY_HEADER, get_settings, require_api_key
from datapipelines.api.mcp.tools import INSTRUCTIONS, ToolDeps, register_tools

MCP_PATH = "/mcp"
SERVER_NAME = "datapipelines"
VERSION = "0.1.0"

# One INFO line per request ("Terminating session: None") in stateless mode is noise.
_CHATTY_LOGGERS = ("mcp.server.streamable_http",)


class ApiKeyGate:
    """ASGI wrapper applying the REST routes' X-API-Key rule (`deps.require_api_key`) first:
    401 for a missing or wrong key, 500 when the server has no key, with the same bodies."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.route: Route | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.route is not None:  # as FastAPI does for its own routes: metrics use its path
            scope["route"] = self.route
        if scope["type"] == "http":
            request = Request(scope)
            try:
                await require_api_key(get_settings(request), request.headers.get(API_KEY_HEADER))
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
        self.server: MCPServer = MCPServer(
            name=SERVER_NAME,
            title="datapipelines",
            description="Run and inspect the data-sync pipelines of a Kubernetes namespace.",
            instructions=INSTRUCTIONS,
            version=VERSION,
        )
        register_tools(self.server, deps)
        self._manager: StreamableHTTPSessionManager | None = None
        self.asgi = ApiKeyGate(self._handle)
        self.route = Route(
            MCP_PATH, endpoint=self.asgi, methods=["GET", "POST", "DELETE"], include_in_schema=False
        )
        self.asgi.route = self.route
        for name in _CHATTY_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)

    def mount(self, app: FastAPI) -> None:
        app.router.routes.append(self.route)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Serve MCP while inside (the app's lifespan). A session manager runs only once, so
        each lifespan gets a new one (test clients start an app's lifespan many times)."""
        # streamable_http_app() makes the session manager; the Starlette app it returns is not
        # used: the route goes straight into the FastAPI app, under its middleware and metrics.
        self.server.streamable_http_app(
            streamable_http_path=MCP_PATH,
            stateless_http=True,
            json_response=False,
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        )
        manager = self.server.session_manager
        async with manager.run():
            self._manager = manager
            try:
                yield
            finally:
                self._manager = None

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        manager = self._manager
        if manager is None:
            body = {"detail": "the MCP endpoint is not running (the app has not started)"}
            await JSONResponse(body, status_code=503)(scope, receive, send)
            return
        await manager.handle_request(scope, receive, send)
