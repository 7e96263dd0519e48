"""`X-Request-ID`: each request's id — the client's when it sent a sane one, else a new one —
echoed in the response and put on every log line written while the request is handled."""

from __future__ import annotations

import logging
import re
import uuid
from contextvars import ContextVar

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = "X-Request-ID"
_SANE = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")

current: ContextVar[str | None] = ContextVar("request_id", default=None)


def request_id_of(presented: str | None) -> str:
    """The client's id when it is short and plain, else a new random one."""
    if presented and _SANE.match(presented):
        return presented
    return uuid.uuid4().hex


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        presented = None
        for name, value in scope.get("headers") or ():
            if name == b"x-request-id":
                presented = value.decode("latin-1")
                break
        rid = request_id_of(presented)
        token = current.set(rid)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[HEADER] = rid
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            current.reset(token)


class RequestIdFilter(logging.Filter):
    """Adds `request_id` to records written while a request is handled."""

    def filter(self, record: logging.LogRecord) -> bool:
        rid = current.get()
        if rid is not None and not hasattr(record, "request_id"):
            record.request_id = rid
        return True
