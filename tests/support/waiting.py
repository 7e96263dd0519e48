"""Polling for the tests (the product itself never polls: it watches)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


def wait_for(fn: Callable[[], T | None], what: str, timeout: float = 60, every: float = 0.3) -> T:
    """Poll `fn` until it returns something truthy; an exception counts as "not yet"."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = fn()
        except Exception as exc:  # keep trying; report the last error
            last = exc
        else:
            if last:
                return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


async def wait_until(
    probe: Callable[[], Awaitable[T]], seconds: float = 60, interval: float = 0.5, what: str = ""
) -> T:
    """Await ``probe`` until it returns something truthy (an exception fails at once)."""
    deadline = time.monotonic() + seconds
    last: Any = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {seconds}s waiting for {what or probe}: last={last!r}")
