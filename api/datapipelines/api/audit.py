"""The audit log: one line per state-changing request, on the logger `datapipelines.audit`.

Who (the caller's id: `key:<id>`, `key:sha256:<prefix>` for a key of DATAPIPELINES_API_KEY,
`user:<name>` for a Kubernetes identity; never a secret), what (method and route), which
connection or task (the path's parameters) and the outcome (status). A request refused before
its caller is known is logged with `caller` null. MCP tool calls are audited by the tools
(logger `datapipelines.api.mcp.tools`, with `caller`).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("datapipelines.audit")

CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
UNAUDITED_PATHS = frozenset({"/mcp"})  # each tool call is audited by the tools
PARAM_FIELDS = {"name": "connection"}  # a path parameter's field in the log line


class AuditMiddleware:
    """Pure ASGI middleware logging every state-changing request once it is answered."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope.get("method") not in CHANGING
            or scope.get("path") in UNAUDITED_PATHS
        ):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route: Any = scope.get("route")
            caller = (scope.get("state") or {}).get("caller")
            log.info(
                "audit",
                extra={
                    "caller": getattr(caller, "id", None),
                    "method": scope.get("method"),
                    "route": getattr(route, "path", None) or scope.get("path"),
                    **{
                        PARAM_FIELDS.get(str(k), str(k)): str(v)
                        for k, v in (scope.get("path_params") or {}).items()
                    },
                    "status": status,
                    "duration_ms": int((time.perf_counter() - started) * 1000),
                },
            )
