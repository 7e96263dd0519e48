"""X-Request-ID: echoed or made, and on the log lines written during the request."""

from __future__ import annotations

import json
import logging
import re

import httpx

from datapipelines.api import requestid
from datapipelines.api.logs import JsonFormatter, TextFormatter


async def test_the_id_is_echoed_or_made(client: httpx.AsyncClient) -> None:
    given = await client.get("/connections", headers={"X-Request-ID": "trace-42"})
    assert given.headers["x-request-id"] == "trace-42"
    made = await client.get("/connections")
    assert re.fullmatch(r"[0-9a-f]{32}", made.headers["x-request-id"])
    odd = await client.get("/healthz", headers={"X-Request-ID": "has space\tand tab"})
    assert re.fullmatch(r"[0-9a-f]{32}", odd.headers["x-request-id"])
    assert (await client.get("/nope")).headers["x-request-id"]  # even a 404 has one


def test_log_lines_carry_it_in_json_and_text() -> None:
    record = logging.LogRecord("datapipelines.api", logging.INFO, "", 0, "run created", None, None)
    record.run = "a-1"
    token = requestid.current.set("trace-42")
    try:
        assert requestid.RequestIdFilter().filter(record)
    finally:
        requestid.current.reset(token)
    line = json.loads(JsonFormatter().format(record))
    assert (
        line["request_id"] == "trace-42" and line["run"] == "a-1" and line["msg"] == "run created"
    )
    text = TextFormatter().format(record)
    assert text.endswith("run created run=a-1 request_id=trace-42")
