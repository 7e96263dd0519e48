"""PipelineConnection: validity (the Ready condition), the queue, last-run status, schedules."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import kopf

from datapipelines.resources import (
    API_VERSION,
    CONNECTION_PLURAL,
    LABEL_CONNECTION,
    LABEL_TRIGGER,
    RUN_KIND,
    RUN_PLURAL,
)
from datapipelines.resources.models import CONDITION_READY, is_terminal, set_condition

from .. import events, schedule
from ..context import Context, now_iso, parse_iso
from ..validation import validate_connection
from .runs import _update_connection_last_run, apply_retention, reconcile_connection

log = logging.getLogger(__name__)


async def on_connection(ctx: Context, body: dict[str, Any], *, resumed: bool = False) -> None:
    """Created, changed or seen at start-up: validate, write Ready, move the queue on."""
    meta = body["metadata"]
    ns, name = meta["namespace"], meta["name"]
    status = body.get("status") or {}
    problem = validate_connection(body.get("spec") or {})
    now = now_iso()
    if problem is None:
        cond = dict(type_=CONDITION_READY, status="True", reason="Valid", message="")
    else:
        cond = dict(type_=CONDITION_READY, status="False", reason=problem[0], message=problem[1])
    conditions = set_condition(
        status.get("conditions"), now=now, observed_generation=meta.get("generation"), **cond
    )
    old: dict[str, Any] = next(
        (c for c in status.get("conditions") or [] if c.get("type") == CONDITION_READY), {}
    )
    if (
        old.get("status") != cond["status"]
        or old.get("reason") != cond["reason"]
        or old.get("message") != cond["message"]
        or status.get("observedGeneration") != meta.get("generation")
    ):
        await ctx.kube.patch_status(
            ns,
            CONNECTION_PLURAL,
            name,
            {"conditions": conditions, "observedGeneration": meta.get("generation")},
        )
        if problem is not None:
            await events.post(ctx.kube, body, "Warning", problem[0], problem[1])
    if resumed:
        await _catch_up_last_run(ctx, ns, name)
        await apply_retention(ctx, ns, name, await ctx.kube.get_connection(ns, name))
    await reconcile_connection(ctx, ns, name)
    if problem is not None:
        raise kopf.PermanentError(f"{problem[0]}: {problem[1]}")


async def _catch_up_last_run(ctx: Context, ns: str, name: str) -> None:
    """After a restart: lastRun* from the newest finished run if a crash skipped it."""
    conn = await ctx.kube.get_connection(ns, name)
    if conn is None:
        return
    finished = [
        r
        for r in await ctx.kube.runs_of_connection(ns, name)
        if is_terminal((r.get("status") or {}).get("phase"))
        and (r.get("status") or {}).get("startTime")
    ]
    if not finished:
        return
    newest = max(finished, key=lambda r: (r["status"]["startTime"], r["metadata"]["name"]))
    await _update_connection_last_run(ctx, conn, newest)


async def on_schedule_timer(ctx: Context, body: dict[str, Any]) -> None:
    """Make the run of the latest due tick (at most one per tick, ever)."""
    meta, spec = body["metadata"], body.get("spec") or {}
    status = body.get("status") or {}
    expr = spec.get("schedule")
    if not expr or spec.get("suspend") or not spec.get("enabled", True):
        return
    if validate_connection(spec) is not None:
        return
    ns, name = meta["namespace"], meta["name"]
    now = datetime.now(UTC)
    due = schedule.due(
        expr,
        spec.get("timeZone"),
        last=parse_iso(status.get("lastScheduleTime")),
        created=parse_iso(meta["creationTimestamp"]) or now,
        now=now,
    )
    if due is None:
        return
    tick = due.tick.replace(microsecond=0).isoformat().replace("+00:00", "Z")
    run_name = schedule.scheduled_run_name(name, due.tick)
    body_run = {
        "apiVersion": API_VERSION,
        "kind": RUN_KIND,
        "metadata": {
            "name": run_name,
            "namespace": ns,
            "labels": {LABEL_CONNECTION: name, LABEL_TRIGGER: "schedule"},
        },
        "spec": {"connectionName": name, "trigger": "schedule", "scheduledTime": tick},
    }
    created = await ctx.kube.create(ns, RUN_PLURAL, body_run, tolerate_409=True)
    if created is not None:
        await events.post(
            ctx.kube, body, "Normal", "Scheduled", f"tick {tick}: created run {run_name}"
        )
        log.info("schedule %s/%s: tick %s → run %s", ns, name, tick, run_name)
        if due.skipped:
            await events.post(
                ctx.kube,
                body,
                "Warning",
                "MissedSchedule",
                f"{due.skipped} earlier tick(s) were missed; ran only the latest ({tick})",
            )
    await ctx.kube.patch_status(ns, CONNECTION_PLURAL, name, {"lastScheduleTime": tick})
