"""PipelineBatch: run its connections one after another (see batch.step for the rules)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from datapipelines.resources import (
    API_VERSION,
    BATCH_PLURAL,
    LABEL_BATCH,
    LABEL_CONNECTION,
    LABEL_TRIGGER,
    RUN_KIND,
    RUN_PLURAL,
)
from datapipelines.resources.models import BatchState, set_condition

from .. import events
from ..batch import BatchRun, step
from ..context import Context, now_iso
from .runs import request_cancel

log = logging.getLogger(__name__)


async def reconcile_batches(ctx: Context, ns: str, names: Iterable[str]) -> None:
    for name in sorted(set(names)):
        await reconcile_batch(ctx, ns, name)


async def reconcile_batch(ctx: Context, ns: str, name: str) -> None:
    async with ctx.batch_lock(ns, name):
        await _reconcile_locked(ctx, ns, name)


async def _reconcile_locked(ctx: Context, ns: str, name: str) -> None:
    batch = await ctx.kube.get_batch(ns, name)
    if batch is None:
        return
    spec = batch.get("spec") or {}
    previous = batch.get("status") or {}
    live: dict[str, BatchRun] = {}
    runs_by_name: dict[str, dict[str, Any]] = {}
    for run in await ctx.kube.runs_of_batch(ns, name):
        conn = (run.get("spec") or {}).get("connectionName")
        if not conn:
            continue
        runs_by_name[run["metadata"]["name"]] = run
        live[conn] = BatchRun(
            connection=conn,
            name=run["metadata"]["name"],
            phase=(run.get("status") or {}).get("phase"),
            cancel_requested=bool((run.get("spec") or {}).get("cancelRequested")),
        )
    now = now_iso()
    result = step(
        name=name,
        connections=list(spec.get("connections") or []),
        cancel_requested=bool(spec.get("cancelRequested")),
        live=live,
        previous=previous,
        now=now,
    )
    if result.create:
        run_name = next(
            r["runName"] for r in result.status["runs"] if r["connection"] == result.create
        )
        body = {
            "apiVersion": API_VERSION,
            "kind": RUN_KIND,
            "metadata": {
                "name": run_name,
                "namespace": ns,
                "labels": {
                    LABEL_CONNECTION: result.create,
                    LABEL_BATCH: name,
                    LABEL_TRIGGER: "batch",
                },
            },
            "spec": {"connectionName": result.create, "trigger": "batch"},
        }
        created = await ctx.kube.create(ns, RUN_PLURAL, body, tolerate_409=True)
        if created is not None:
            await events.post(
                ctx.kube, batch, "Normal", "RunCreated", f"{result.create}: created run {run_name}"
            )
    for run_name in result.cancel:
        to_cancel = runs_by_name.get(run_name)
        if to_cancel is not None:
            await request_cancel(ctx, to_cancel, f"batch {name} was cancelled")

    status = dict(result.status)
    state = status["state"]
    cond_status = {"queued": "Unknown", "running": "Unknown", "finished": "True"}.get(
        state, "False"
    )
    message = {
        "running": f"running {status['current']}",
        "finished": f"all {len(status['completed'])} connection(s) ran",
        "cancelled": f"cancelled after {len(status['completed'])} connection(s)",
    }.get(state, "")
    status["conditions"] = set_condition(
        previous.get("conditions"),
        type_="Complete",
        status=cond_status,
        reason=state.capitalize(),
        message=message,
        now=now,
        observed_generation=batch["metadata"].get("generation"),
    )
    status["observedGeneration"] = batch["metadata"].get("generation")
    comparable = {k: v for k, v in status.items() if k != "conditions"}
    if (
        any(previous.get(k) != v for k, v in comparable.items())
        or (previous.get("conditions") or []) != status["conditions"]
    ):
        await ctx.kube.patch_status(ns, BATCH_PLURAL, name, status)
        if previous.get("state") != state:
            if state == BatchState.FINISHED.value:
                await events.post(ctx.kube, batch, "Normal", "Finished", message)
            elif state == BatchState.CANCELLED.value:
                await events.post(ctx.kube, batch, "Normal", "Cancelled", message)
            elif state == BatchState.RUNNING.value and not previous.get("state"):
                await events.post(ctx.kube, batch, "Normal", "Started", message)
        log.info("batch %s/%s: %s", ns, name, message or state)
    # A run that was created here is picked up by the run handlers (kopf on.create).
