"""What the endpoints do, over a PipelineStore (and the optional archive).

Kept apart from the routes so the rules (concurrency policy, cancel semantics, history merge)
read in one place and run against the in-memory fake in unit tests.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from datapipelines.api import mapping
from datapipelines.api.archive import HistoryArchive
from datapipelines.api.errors import (
    ArchiveUnavailable,
    Conflict,
    NotFound,
    RunVanished,
    WaitTimeout,
)
from datapipelines.api.models import (
    BatchStartedOut,
    CancelOut,
    ConnectionOut,
    ConnectionStatusOut,
    HistoryEntryOut,
    RunResultOut,
    RunStartedOut,
    TaskStatusOut,
)
from datapipelines.api.store import Obj, PipelineStore

log = logging.getLogger(__name__)

WAIT_SLACK_SECONDS = 600


def list_connections(store: PipelineStore, *, only_enabled: bool = False) -> list[ConnectionOut]:
    runs = store.runs()
    conns = sorted(store.connections(), key=mapping.name_of)
    return [
        mapping.connection_out(c, runs) for c in conns if not only_enabled or mapping.is_enabled(c)
    ]


def get_connection(store: PipelineStore, name: str) -> Obj:
    conn = store.connection(name)
    if conn is None:
        raise NotFound(f"connection {name!r} not found", connection=name)
    return conn


async def connection_status(
    store: PipelineStore, archive: HistoryArchive | None, name: str
) -> ConnectionStatusOut:
    conn = get_connection(store, name)
    runs = store.runs()
    last = mapping.last_run_from_runs(runs, name)
    if last is None and archive is not None:
        try:
            last = await archive.last_run(store.namespace, name)
        except ArchiveUnavailable as exc:
            log.warning("archive unavailable", extra={"error": exc.detail})
    last = mapping.newest_last_run(last, mapping.last_run_from_connection(conn))
    return mapping.connection_status_out(conn, runs, last)


async def start_run(store: PipelineStore, name: str, *, trigger: str = "api") -> Obj:
    """Create a PipelineRun for `name`, refusing (409) when concurrencyPolicy Forbid holds."""
    async with store.connection_lock(name):
        conn = get_connection(store, name)
        policy = mapping.spec_of(conn).get("concurrencyPolicy") or "Forbid"
        if policy == "Forbid":
            active = mapping.active_runs(store.runs(), name)
            if active:
                raise Conflict(
                    f"connection {name!r} already has an active run {active[0]!r} and its "
                    "concurrencyPolicy is Forbid; wait for it or cancel it with "
                    f"POST /cancel_task/{active[0]}",
                    active_task_id=active[0],
                    connection=name,
                )
        run = await store.create_run(mapping.new_run_manifest(name, trigger))
    log.info("run created", extra={"run": mapping.name_of(run), "connection": name})
    return run


def wait_limit(conn: Obj, override: int | None) -> float:
    if override:
        return float(override)
    spec = mapping.spec_of(conn)
    timeout = int(spec.get("timeoutSeconds") or 3600)
    retries = int(spec.get("retries") or 0)
    return float(timeout * (retries + 1) + WAIT_SLACK_SECONDS)


async def run_and_wait(
    store: PipelineStore, name: str, *, include_report: bool, wait_seconds: int | None
) -> RunResultOut:
    run = await start_run(store, name)
    run_id = mapping.name_of(run)
    limit = wait_limit(get_connection(store, name), wait_seconds)
    try:
        async with asyncio.timeout(limit):
            final = await store.wait_for_run_end(run_id)
    except TimeoutError:
        raise WaitTimeout(
            f"run {run_id!r} has not finished after {int(limit)} s; it goes on: follow it with "
            f"GET /task_status/{run_id}",
            run_id=run_id,
        ) from None
    if final is None:
        raise RunVanished(
            f"run {run_id!r} was deleted before it finished", run_id=run_id, success=False
        )
    return mapping.run_result(final, include_report=include_report)


async def run_async(store: PipelineStore, name: str) -> RunStartedOut:
    run = await start_run(store, name)
    run_id = mapping.name_of(run)
    return RunStartedOut(
        message=f"run of {name!r} started; poll /task_status/{run_id}",
        task_id=run_id,
        connection=name,
    )


async def run_selected(store: PipelineStore) -> BatchStartedOut:
    names = [
        mapping.name_of(c)
        for c in sorted(store.connections(), key=mapping.name_of)
        if mapping.is_enabled(c)
    ]
    batch = await store.create_batch(mapping.new_batch_manifest(names))
    task_id = mapping.name_of(batch)
    log.info("batch created", extra={"batch": task_id, "connections": names})
    return BatchStartedOut(
        message=f"batch of {len(names)} enabled connection(s) started; poll /task_status/{task_id}",
        task_id=task_id,
        connections=names,
    )


@dataclass
class _Task:
    kind: str
    obj: Obj


def _find_task(store: PipelineStore, task_id: str) -> _Task:
    run = store.run(task_id)
    if run is not None:
        return _Task("single", run)
    batch = store.batch(task_id)
    if batch is not None:
        return _Task("batch", batch)
    raise NotFound(f"task {task_id!r} not found", task_id=task_id)


def task_status(store: PipelineStore, task_id: str) -> TaskStatusOut:
    task = _find_task(store, task_id)
    if task.kind == "single":
        return mapping.task_status_of_run(task.obj)
    return mapping.task_status_of_batch(task.obj, store.runs())


async def _cancel_run(store: PipelineStore, run: Obj) -> None:
    name = mapping.name_of(run)
    if not mapping.spec_of(run).get("cancelRequested"):
        try:
            await store.patch_run(name, mapping.CANCEL_PATCH)
        except NotFound:
            raise NotFound(f"task {name!r} not found", task_id=name) from None
    job = mapping.status_of(run).get("jobName") or name
    deleted = await store.delete_job(job)
    log.info("run cancel requested", extra={"run": name, "job_deleted": deleted})


async def cancel_task(store: PipelineStore, task_id: str) -> CancelOut:
    task = _find_task(store, task_id)
    if task.kind == "single":
        if mapping.is_terminal(task.obj):
            raise NotFound(
                f"task {task_id!r} has already finished ({mapping.run_phase(task.obj)})",
                task_id=task_id,
            )
        await _cancel_run(store, task.obj)
        return CancelOut(
            message=f"cancellation of run {task_id!r} requested", task_id=task_id, kind="single"
        )
    if mapping.is_batch_finished(task.obj):
        raise NotFound(
            f"task {task_id!r} has already finished ({mapping.batch_state(task.obj)})",
            task_id=task_id,
        )
    if not mapping.spec_of(task.obj).get("cancelRequested"):
        try:
            await store.patch_batch(task_id, mapping.CANCEL_PATCH)
        except NotFound:
            raise NotFound(f"task {task_id!r} not found", task_id=task_id) from None
    for run in store.runs():
        if mapping.run_batch(run) == task_id and not mapping.is_terminal(run):
            await _cancel_run(store, run)
    return CancelOut(
        message=f"cancellation of batch {task_id!r} requested", task_id=task_id, kind="batch"
    )


async def history(
    store: PipelineStore, archive: HistoryArchive | None, limit: int
) -> tuple[list[HistoryEntryOut], bool]:
    """Newest first; returns (entries, archive_ok)."""
    runs = store.runs()
    archived: list[HistoryEntryOut] = []
    archive_ok = True
    if archive is not None:
        try:
            archived = await archive.recent(store.namespace, limit)
        except ArchiveUnavailable as exc:
            archive_ok = False
            log.warning(
                "archive unavailable, history from the cluster only", extra={"error": exc.detail}
            )
    return mapping.merge_history(runs, archived, limit), archive_ok
