"""A rest_api source's HTTP retry policy (``restApi.retry``): dlt's request settings from the
typed spec, every wait capped (a ``Retry-After`` header included: dlt honours it uncapped), and
the waits counted for the report.

``apply`` runs before ``import dlt`` (dlt reads its request settings once); ``install`` after.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from typing import Any

from datapipelines.resources.connection import ConnectionSpec, HttpRetry, RestApiSource
from datapipelines.resources.saas import SaasSource

log = logging.getLogger(__name__)

#: Waits before a retry in this process, by what caused them: an HTTP status ("429", "503")
#: or "error" (a dropped or refused connection).
WAITS: Counter[str] = Counter()
_cap = {"seconds": float(HttpRetry().max_delay_seconds)}


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
    retry = policy(spec)
    if retry is not None:
        os.environ.update(environment(retry))
        _cap["seconds"] = float(retry.max_delay_seconds)


def install() -> None:
    """After ``import dlt``: cap and count every wait of dlt's HTTP retries."""
    from dlt.sources.helpers.requests import retry as dlt_retry

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
    total = sum(WAITS.values())
    if not total:
        return None
    parts = ", ".join(f"{reason}: {n}" for reason, n in sorted(WAITS.items()))
    return f"HTTP waits before retries: {total} ({parts})"
