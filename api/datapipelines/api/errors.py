"""Errors the API answers with, and the exception handlers that turn them into JSON.

Every error body is `{"detail": "<message>", ...extra fields}`; nothing ever answers with a
traceback. Domain code raises these; the routes stay free of status-code plumbing.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error with an HTTP status, a message and optional extra body fields."""

    status_code = 500

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"detail": self.detail, **self.extra}


class NotFound(ApiError):
    status_code = 404


class Forbidden(ApiError):
    """The caller sees the object but lacks the verb (`missing`) in its namespace."""

    status_code = 403


class Conflict(ApiError):
    status_code = 409


class Invalid(ApiError):
    status_code = 422


class RunVanished(ApiError):
    """The run object was deleted before it reached a terminal phase ("fails unexpectedly")."""

    status_code = 500


class KubeUnavailable(ApiError):
    """The Kubernetes API cannot be reached (or the cache has not synced yet)."""

    status_code = 503


class ArchiveUnavailable(ApiError):
    """The PostgreSQL run archive cannot be reached."""

    status_code = 503


class WaitTimeout(ApiError):
    """A synchronous run did not end within the wait limit; the run itself goes on."""

    status_code = 504


async def _api_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    if exc.status_code >= 500:
        log.warning(
            "request failed",
            extra={"path": request.url.path, "status": exc.status_code, "error": exc.detail},
        )
    headers = {"Retry-After": "5"} if exc.status_code == 503 else None
    return JSONResponse(exc.body(), status_code=exc.status_code, headers=headers)


async def _unexpected_handler(request: Request, exc: Exception) -> JSONResponse:
    log.error(
        "unhandled error",
        exc_info=(type(exc), exc, exc.__traceback__),
        extra={"path": request.url.path},
    )
    return JSONResponse(
        {"detail": f"internal error ({type(exc).__name__}); see the API server's logs"},
        status_code=500,
    )


def install_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error_handler)
    app.add_exception_handler(Exception, _unexpected_handler)
