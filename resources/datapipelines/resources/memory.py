"""Keeping the cyclic garbage collector off the long-lived objects of a watch-fed process.

The API's catalog and the operator's indexes hold every watched object for the life of the
process. CPython's full collection walks all of them: ~95 ms at 10,000 connections (measured:
143,000 tracked objects), a pause of the whole event loop each time allocation triggers one —
the tail of every request and dispatch in flight. `freeze_long_lived()`, called once the
initial lists are in memory (and after a relist), collects what is garbage now and moves the
survivors to the permanent generation (`gc.freeze()`, as the CPython docs suggest for
long-lived state): later collections skip them. Objects freed later by reference counting are
still freed; only reference cycles among frozen objects would outlive their use, and the
catalog and indexes hold plain data without cycles.

A process decides its own collector policy: the API's and the operator's entry points call
`enable()`; a library user (tests running the app in-process) gets no freezing.
"""

from __future__ import annotations

import gc
import logging
import time

log = logging.getLogger(__name__)

_enabled = False


def enable() -> None:
    global _enabled
    _enabled = True


def freeze_long_lived(what: str) -> None:
    if not _enabled:
        return
    started = time.perf_counter()
    gc.collect()
    gc.freeze()
    log.info(
        "long-lived objects frozen out of the garbage collector's way",
        extra={
            "what": what,
            "objects": gc.get_freeze_count(),
            "ms": round((time.perf_counter() - started) * 1000, 1),
        },
    )
