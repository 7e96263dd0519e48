"""Manifests of the objects the API and the operator create: PipelineRuns and PipelineBatches.

One builder per kind, so a run made by the API, a batch, a schedule tick or ``kubectl create``
(the README's example) has the same labels and spec. Names: docs/contracts.md. Pure.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from . import (
    API_VERSION,
    BATCH_KIND,
    LABEL_BATCH,
    LABEL_CONNECTION,
    LABEL_TRIGGER,
    MAX_RUN_NAME,
    RUN_KIND,
)
from .run import RunOptions, Trigger
from .times import format_time

#: generateName adds 5 characters.
_GENERATED_SUFFIX = 5


def short_name(base: str, suffix: str = "", limit: int = MAX_RUN_NAME) -> str:
    """``base-suffix`` (or ``base``), shortened with a stable hash to fit ``limit``."""
    full = f"{base}-{suffix}" if suffix else base
    if len(full) <= limit:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:8]
    tail = f"-{digest}-{suffix}" if suffix else f"-{digest}"
    return base[: limit - len(tail)].rstrip("-") + tail


def generate_prefix(base: str, limit: int = MAX_RUN_NAME) -> str:
    """A ``generateName`` prefix whose generated names stay within ``limit``."""
    return base[: limit - _GENERATED_SUFFIX - 1].rstrip("-.") + "-"


def run_manifest(
    connection: str,
    trigger: Trigger,
    *,
    name: str | None = None,
    namespace: str | None = None,
    batch: str | None = None,
    scheduled_time: datetime | None = None,
    options: RunOptions | None = None,
) -> dict[str, Any]:
    """A PipelineRun asking for one run of ``connection``; generated name unless ``name``;
    ``options``: a full refresh, some streams only, a backfill since a time."""
    labels = {LABEL_CONNECTION: connection, LABEL_TRIGGER: trigger.value}
    if batch:
        labels[LABEL_BATCH] = batch
    meta: dict[str, Any] = {"labels": labels}
    if name:
        meta["name"] = name
    else:
        meta["generateName"] = generate_prefix(connection)
    if namespace:
        meta["namespace"] = namespace
    spec: dict[str, Any] = {"connectionName": connection, "trigger": trigger.value}
    if scheduled_time is not None:
        spec["scheduledTime"] = format_time(scheduled_time)
    if options is not None:
        if options.full_refresh:
            spec["fullRefresh"] = True
        if options.streams:
            spec["streams"] = list(options.streams)
        if options.since is not None:
            spec["since"] = format_time(options.since)
    return {"apiVersion": API_VERSION, "kind": RUN_KIND, "metadata": meta, "spec": spec}


def batch_run_name(batch: str, connection: str) -> str:
    """Name of the run a batch makes for one connection (stable: a retried step never makes
    two)."""
    return short_name(f"{batch}-{connection}")


def scheduled_run_name(connection: str, tick: datetime) -> str:
    """``<connection>-<unix minute of the tick>``: one name per tick, forever."""
    aware = tick if tick.tzinfo else tick.replace(tzinfo=UTC)
    return short_name(connection, str(int(aware.timestamp()) // 60))


def batch_manifest(
    connections: list[str],
    *,
    name: str | None = None,
    namespace: str | None = None,
    trigger: Trigger = Trigger.API,
) -> dict[str, Any]:
    """A PipelineBatch running ``connections`` one after another."""
    meta: dict[str, Any] = {"labels": {LABEL_TRIGGER: trigger.value}}
    if name:
        meta["name"] = name
    else:
        meta["generateName"] = "batch-"
    if namespace:
        meta["namespace"] = namespace
    return {
        "apiVersion": API_VERSION,
        "kind": BATCH_KIND,
        "metadata": meta,
        "spec": {"connections": list(connections)},
    }


CANCEL_PATCH: dict[str, Any] = {"spec": {"cancelRequested": True}}
