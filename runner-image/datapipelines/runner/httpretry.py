"""A rest_api or SaaS source's HTTP client policy: retries (``retry``) as dlt's request settings
from the typed spec, every wait capped (a ``Retry-After`` header included: dlt honours it
uncapped) and counted for the report; and optional pacing (``requestsPerSecond``): every request
dlt sends, each try of it included, waits for its turn.

``apply`` runs before ``import dlt`` (dlt reads its request settings once); ``install`` after.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from datapipelines.resources.connection import ConnectionSpec, HttpRetry, RestApiSource
from datapipelines.resources.saas import SaasSource

log = logging.getLogger(__name__)

#: Waits before a retry in this process, by what caused them: an HTTP status ("429", "503")
#: or "error" (a dropped or refused connection).
WAITS: Counter[str] = Counter()
_cap = {"seconds": float(HttpRetry().max_delay_seconds)}


class Pacer:
    """At most ``rate`` requests per second: each caller gets the next free slot (slots are
    1/rate apart) and sleeps until it. Thread-safe: dlt's parallel resources share it."""

    def __init__(
        self,
        rate: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.interval = 1.0 / rate
        self._clock, self._sleep = clock, sleep
        self._next = 0.0
        self._lock = threading.Lock()
        self.waited = 0.0

    def wait(self) -> None:
        with self._lock:
            now = self._clock()
            slot = max(now, self._next)
            self._next = slot + self.interval
            delay = slot - now
            self.waited += delay
        if delay > 0:
            self._sleep(delay)


#: The pacing of this process's source (None: unpaced).
_pacer: dict[str, Pacer | None] = {"current": None}


def pacing(spec: ConnectionSpec) -> float | None:
    """Requests per second of a rest_api or SaaS source (None: unpaced)."""
    settings = spec.source_settings
    if isinstance(settings, RestApiSource | SaasSource):
        return settings.requests_per_second
    return None


def policy(spec: ConnectionSpec) -> HttpRetry | None:
    """The HTTP retry policy of a rest_api or SaaS source (None: the runner's defaults)."""
    settings = spec.source_settings
    if isinstance(settings, RestApiSource | SaasSource):
        return settings.retry
    return None


def environment(retry: HttpRetry) -> dict[str, str]:
    """dlt's request settings for ``retry``."""
    return {
        "RUNTIME__REQUEST_MAX_ATTEMPTS": str(retry.max_attempts),
        "RUNTIME__REQUEST_BACKOFF_FACTOR": f"{retry.backoff_factor:g}",
        "RUNTIME__REQUEST_MAX_RETRY_DELAY": str(retry.max_delay_seconds),
        "RUNTIME__REQUEST_TIMEOUT": str(retry.timeout_seconds),
    }


def apply(spec: ConnectionSpec) -> None:
    """Before ``import dlt``: the spec's policy (when it has one) wins over the runner's
    defaults (dltenv.py)."""
    WAITS.clear()  # one run per process in a pod; several in tests
    rate = pacing(spec)
    _pacer["current"] = Pacer(rate) if rate else None
    retry = policy(spec)
    if retry is not None:
        os.environ.update(environment(retry))
        _cap["seconds"] = float(retry.max_delay_seconds)


def install() -> None:
    """After ``import dlt``: cap and count every wait of dlt's HTTP retries; pace every request
    dlt's sessions send."""
    from dlt.sources.helpers.requests import retry as dlt_retry
    from dlt.sources.helpers.requests.session import Session

    if not getattr(Session.send, "_datapipelines", False):
        send = Session.send

        def paced(self: Any, request: Any, **kwargs: Any) -> Any:
            pacer = _pacer["current"]
            if pacer is not None:
                pacer.wait()
            return send(self, request, **kwargs)

        paced._datapipelines = True  # type: ignore[attr-defined]
        Session.send = paced  # type: ignore[method-assign]

    wait_cls: Any = dlt_retry.wait_exponential_retry_after
    if getattr(wait_cls.__call__, "_datapipelines", False):
        return
    original = wait_cls.__call__

    def capped(self: Any, retry_state: Any) -> float:
        delay = min(float(original(self, retry_state)), _cap["seconds"])
        reason = "error"
        outcome = retry_state.outcome
        if outcome is not None:
            response = (
                getattr(outcome.exception(), "response", None)
                if outcome.failed
                else outcome.result()
            )
            reason = str(getattr(response, "status_code", None) or "error")
        WAITS[reason] += 1
        log.info(
            "source answered %s; waiting %.1f s before try %d",
            reason,
            delay,
            retry_state.attempt_number + 1,
        )
        return delay

    capped._datapipelines = True  # type: ignore[attr-defined]
    wait_cls.__call__ = capped


def summary() -> str | None:
    """``HTTP waits: 4 (429: 3, error: 1)`` for the report, None without waits."""
    pacer = _pacer["current"]
    paced = (
        f"paced at {1 / pacer.interval:g} requests/s (waited {pacer.waited:.1f} s)"
        if pacer is not None
        else None
    )
    total = sum(WAITS.values())
    if not total:
        return paced
    parts = ", ".join(f"{reason}: {n}" for reason, n in sorted(WAITS.items()))
    waits = f"HTTP waits before retries: {total} ({parts})"
    return f"{waits}; {paced}" if paced else waits
