"""Structured logs of the API: the project's one schema (`datapipelines.resources.logformat`),
JSON per line or text with DATAPIPELINES_LOG_FORMAT=text, each line of a request with its
`request_id`."""

from __future__ import annotations

import logging
import sys

from datapipelines.resources.logformat import JsonFormatter, TextFormatter

__all__ = ["JsonFormatter", "TextFormatter", "configure_logging"]


def configure_logging(fmt: str = "json", level: str = "INFO") -> None:
    from datapipelines.api.requestid import RequestIdFilter

    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
