"""What the endpoints do, over a PipelineStore (and the optional archive).

Kept apart from the routes so the rules (concurrency policy, cancel semantics, history merge)
read in one place and run against the in-memory fake in unit tests; the MCP tools call the
same functions.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import secrets
import string
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from datapipelines.api import mapping
from datapipelines.api.access import Caller, Verb
from datapipelines.api.archive import HistoryArchive
from datapipelines.api.catalog import ConnectionSummary
from datapipelines.api.errors import (
    ArchiveUnavailable,
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    RunVanished,
    WaitTimeout,
)
from datapipelines.api.models import (
    BatchStartedOut,
    CancelOut,
    ConnectionOut,
    ConnectionSchemaOut,
    ConnectionStatusOut,
    HistoryEntryOut,
    RunLogsOut,
    RunResultOut,
    RunStartedOut,
    TaskStatusOut,
)
from datapipelines.api.podlogs import PodLogSource
from datapipelines.api.store import PipelineStore
from datapipelines.resources.batch import PipelineBatch
from datapipelines.resources.connection import ConcurrencyPolicy
from datapipelines.resources.manifests import CANCEL_PATCH, batch_manifest, run_manifest
from datapipelines.resources.run import KeptLog, PipelineRun, RunOptions, RunPhase, Trigger
from datapipelines.resources.times import time_key

log = logging.getLogger(__name__)

WAIT_SLACK_SECONDS = 600

UpdateHook = Callable[[TaskStatusOut], Awaitable[None]]


Key = tuple[str, str]


async def _seen(caller: Caller, keys: list[Key]) -> set[str] | None:
    """The namespaces of `keys` that exist for the caller (None: every one, unrestricted)."""
    if caller.unrestricted:
        return None
    return await caller.seen(ns for ns, _ in keys)


async def readable_connections(store: PipelineStore, caller: Caller) -> list[Key]:
    """The connections, sorted, of the namespaces where the caller may read (one question per
    namespace, none per connection; no filtering when it may read them all)."""
    catalog = store.catalog
    keys = catalog.sorted_connections()
    if caller.unrestricted:
        return keys
    namespaces = catalog.connections_per_namespace.keys()
    readable = await caller.where(Verb.READ, namespaces)
    if len(readable) == len(namespaces):
        return keys
    return [k for k in keys if k[0] in readable]


def known_namespaces(store: PipelineStore) -> set[str]:
    """The namespaces served: the configured ones, else every one the catalog holds objects of."""
    if store.namespaces:
        return set(store.namespaces)
    catalog = store.catalog
    return set(catalog.connections_per_namespace) | {ns for ns, _ in catalog.runs}


async def list_connections(
    store: PipelineStore, *, caller: Caller, only_enabled: bool = False
) -> list[ConnectionOut]:
    catalog = store.catalog
    out = []
    for key in await readable_connections(store, caller):
        conn = catalog.connection(key)
        if conn is not None and (conn.enabled or not only_enabled):
            out.append(mapping.connection_out(catalog, conn))
    return out


async def list_connections_json(
    store: PipelineStore, *, caller: Caller, only_enabled: bool = False
) -> bytes:
    """`list_connections` as the JSON body, from each connection's cached fragment: O(number
    of connections), and only changed connections are rendered again."""
    catalog = store.catalog
    parts = []
    for key in await readable_connections(store, caller):
        conn = catalog.connection(key)
        if conn is not None and (conn.enabled or not only_enabled):
            parts.append(catalog.fragment(key, mapping.connection_fragment))
    return b"[" + b",".join(parts) + b"]"


async def get_connection(
    store: PipelineStore,
    name: str,
    *,
    caller: Caller,
    verb: Verb = Verb.READ,
    namespace: str | None = None,
) -> ConnectionSummary:
    """The connection `name` (in `namespace` when given) among those the caller sees (404
    otherwise, as for an unknown name); 403 when it may not `verb` it."""
    keys = store.catalog.connection_keys_named(name)
    if namespace is not None:
        keys = [k for k in keys if k[0] == namespace]
    seen = await _seen(caller, keys)
    if seen is None and namespace is not None:
        seen = {namespace}
    conn = store.connection(name, seen)
    if conn is None:
        raise NotFound(f"connection {name!r} not found", connection=name)
    await caller.require(verb, conn.namespace, connection=name)
    return conn


async def connection_status(
    store: PipelineStore, archive: HistoryArchive | None, name: str, *, caller: Caller
) -> ConnectionStatusOut:
    """The connection and its last run: the operator keeps that in the connection's status
    (it outlives the run objects), a newer finished run in memory wins; when neither knows one
    (a connection deleted and created again), the archive's newest row of it does."""
    conn = await get_connection(store, name, caller=caller)
    out = mapping.connection_status_out(store.catalog, conn)
    if out.last_run_source is None and archive is not None:
        try:
            row = await archive.last_run(conn.namespace, name)
        except ArchiveUnavailable as exc:
            log.warning("archive unavailable", extra={"error": exc.detail})
            row = None
        if row is not None:
            out = out.model_copy(update=mapping.last_run_of_row(row))
    return out


#: Successful runs looked at (newest first) for one that reported its schema: runners older
#: than the loadedSchema field reported none.
SCHEMA_RUNS_TRIED = 3


async def connection_schema(
    store: PipelineStore, name: str, *, caller: Caller
) -> ConnectionSchemaOut:
    """What the connection loads: the tables and columns its newest successful run reported
    (read from that run on demand), its schema contract and its runs' recent schema changes."""
    conn = await get_connection(store, name, caller=caller)
    runs = sorted(
        (r for r in store.catalog.runs_of(conn.key) if r.terminal),
        key=lambda r: time_key(r.status.completion_time),
        reverse=True,
    )
    out = ConnectionSchemaOut(
        connection=conn.name, namespace=conn.namespace, schema_name=conn.schema_name, source="none"
    )
    manifest = await store.connection_manifest(conn.namespace, conn.name)
    contract = ((manifest or {}).get("spec") or {}).get("schemaContract")
    if isinstance(contract, dict):
        out.schema_contract = {str(k): str(v) for k, v in contract.items()}
    out.recent_changes = mapping.recent_schema_changes(runs)
    succeeded = [r for r in runs if r.phase is RunPhase.SUCCEEDED][:SCHEMA_RUNS_TRIED]
    for run in succeeded:
        schema = await store.loaded_schema(run)
        if schema is not None:
            return mapping.schema_out(out, run, schema)
    return out


async def start_run(
    store: PipelineStore,
    name: str,
    *,
    caller: Caller,
    trigger: str = "api",
    namespace: str | None = None,
    options: RunOptions | None = None,
) -> PipelineRun:
    """Create a PipelineRun for `name`, refusing (409) when concurrencyPolicy Forbid holds."""
    conn = await get_connection(store, name, caller=caller, verb=Verb.RUN, namespace=namespace)
    return await _start(store, conn, trigger, options)


async def _start(
    store: PipelineStore,
    conn: ConnectionSummary,
    trigger: str,
    options: RunOptions | None = None,
) -> PipelineRun:
    name = conn.name
    async with store.connection_lock(conn):
        if conn.concurrency_policy == ConcurrencyPolicy.FORBID.value:
            active = store.catalog.active_runs(conn.key)
            if active:
                first = active[0].name
                raise Conflict(
                    f"connection {name!r} already has an active run {first!r} and its "
                    "concurrencyPolicy is Forbid; wait for it or cancel it with "
                    f"POST /cancel_task/{first}",
                    active_task_id=first,
                    connection=name,
                )
        manifest = run_manifest(name, Trigger(trigger), namespace=conn.namespace, options=options)
        run = await store.create_run(conn.namespace, manifest)
    extra = {"run": run.name, "connection": name}
    if options is not None:
        extra["options"] = options.describe()
    log.info("run created", extra=extra)
    return run


def wait_limit(conn: ConnectionSummary, override: int | None) -> float:
    if override:
        return float(override)
    return float(conn.timeout_seconds * (conn.retries + 1) + WAIT_SLACK_SECONDS)


async def _result(store: PipelineStore, run: PipelineRun, include_report: bool) -> RunResultOut:
    report = await store.report(run) if include_report else None
    return mapping.run_result(run, report=report)


async def run_and_wait(
    store: PipelineStore,
    name: str,
    *,
    caller: Caller,
    include_report: bool,
    wait_seconds: int | None,
    options: RunOptions | None = None,
) -> RunResultOut:
    conn = await get_connection(store, name, caller=caller, verb=Verb.RUN)
    run = await _start(store, conn, "api", options)
    limit = wait_limit(conn, wait_seconds)
    try:
        async with asyncio.timeout(limit):
            final = await store.wait_for_run_end(run)
    except TimeoutError:
        raise _wait_timeout(run.name, limit) from None
    if final is None:
        raise _vanished(run.name)
    return await _result(store, final, include_report)


def _wait_timeout(run_id: str, limit: float) -> WaitTimeout:
    return WaitTimeout(
        f"run {run_id!r} has not finished after {int(limit)} s; it goes on: follow it with "
        f"GET /task_status/{run_id}",
        run_id=run_id,
    )


def _vanished(run_id: str) -> RunVanished:
    return RunVanished(
        f"run {run_id!r} was deleted before it finished", run_id=run_id, success=False
    )


async def _run_states(store: PipelineStore, run: PipelineRun) -> AsyncGenerator[PipelineRun, None]:
    """The run now and at each change until it ends; RunVanished when it is deleted first."""
    last: PipelineRun | None = None
    async with contextlib.aclosing(store.run_updates(run)) as updates:
        async for state in updates:
            last = state
            yield state
    if last is None or not last.terminal:
        raise _vanished(run.name)


async def run_and_follow(
    store: PipelineStore,
    name: str,
    *,
    caller: Caller,
    include_report: bool,
    wait_seconds: int | None,
    on_update: UpdateHook,
    options: RunOptions | None = None,
) -> RunResultOut:
    """`run_and_wait` (the same run, wait limit, errors and result) that also hands `on_update`
    the run's task status now and each time it changes before it ends (live progress)."""
    conn = await get_connection(store, name, caller=caller, verb=Verb.RUN)
    run = await _start(store, conn, "api", options)
    limit = wait_limit(conn, wait_seconds)
    final: PipelineRun | None = None
    try:
        async with asyncio.timeout(limit):
            async with contextlib.aclosing(_run_states(store, run)) as states:
                async for state in states:
                    final = state
                    if not state.terminal:
                        await on_update(mapping.task_status_of_run(state))
    except TimeoutError:
        raise _wait_timeout(run.name, limit) from None
    assert final is not None  # _run_states raised otherwise
    return await _result(store, final, include_report)


async def follow_run(
    store: PipelineStore, run_id: str, *, caller: Caller
) -> AsyncGenerator[TaskStatusOut, None]:
    """The task status of run `run_id` now and at each change (no polling), the last one
    terminal. NotFound for an unknown task, Invalid for a batch (follow its runs), RunVanished
    when the run is deleted before it ends. Close it (`contextlib.aclosing`) when leaving early."""
    task = await _find_task(store, caller, run_id, Verb.READ)
    run = task.run
    if run is None:
        if task.batches:
            raise Invalid(
                f"task {run_id!r} is a batch: follow one of its runs (task_status lists them)",
                task_id=run_id,
            )
        raise NotFound(f"task {run_id!r} not found", task_id=run_id)
    async with contextlib.aclosing(_run_states(store, run)) as states:
        async for state in states:
            yield mapping.task_status_of_run(state)


async def run_async(
    store: PipelineStore, name: str, *, caller: Caller, options: RunOptions | None = None
) -> RunStartedOut:
    run = await start_run(store, name, caller=caller, options=options)
    return RunStartedOut(
        message=f"run of {name!r} started; poll /task_status/{run.name}",
        task_id=run.name,
        connection=name,
    )


def _batch_name() -> str:
    alphabet = string.ascii_lowercase + string.digits
    return "batch-" + "".join(secrets.choice(alphabet) for _ in range(8))


async def run_selected(store: PipelineStore, *, caller: Caller) -> BatchStartedOut:
    """A batch of every enabled connection the caller may run: one PipelineBatch per namespace
    (each runs its connections one after another; namespaces run side by side), all of one
    name — the task. 403 for a caller that may run in no namespace."""
    catalog = store.catalog
    runnable: set[str] | None = None
    if not caller.unrestricted:
        runnable = await caller.where(Verb.RUN, known_namespaces(store))
        if not runnable:
            raise Forbidden(
                f"{caller.id} may not run in any namespace: {caller.describe()}",
                missing=Verb.RUN.value,
            )
    by_namespace: dict[str, list[str]] = {}
    namespaces_of: dict[str, list[str]] = {}
    for key in catalog.sorted_connections():
        conn = catalog.connection(key)
        if runnable is not None and key[0] not in runnable:
            continue
        if conn is not None and conn.enabled:
            by_namespace.setdefault(conn.namespace, []).append(conn.name)
            namespaces_of.setdefault(conn.name, []).append(conn.namespace)
    twice = {n: ns for n, ns in namespaces_of.items() if len(ns) > 1}
    if twice:
        where = "; ".join(f"{n} in {', '.join(ns)}" for n, ns in sorted(twice.items()))
        raise Conflict(
            f"enabled connections share names across namespaces ({where}): connection names "
            "must be unique across the namespaces this API serves (rename them)",
            connections=sorted(twice),
        )

    fallback = sorted(runnable) if runnable else store.namespaces
    namespaces = sorted(by_namespace) or [fallback[0] if fallback else "default"]
    for attempt in range(3):
        name = _batch_name()
        try:
            for ns in namespaces:
                manifest = batch_manifest(by_namespace.get(ns, []), name=name, namespace=ns)
                await store.create_batch(ns, manifest)
            break
        except Conflict:
            if attempt == 2 or ns != namespaces[0]:
                raise
    names = [c for ns in namespaces for c in by_namespace.get(ns, [])]
    log.info("batch created", extra={"batch": name, "connections": len(names)})
    return BatchStartedOut(
        message=f"batch of {len(names)} enabled connection(s) started; poll /task_status/{name}",
        task_id=name,
        connections=names,
    )


async def visible_run(store: PipelineStore, run_id: str, *, caller: Caller) -> PipelineRun | None:
    """The run `run_id` among the namespaces the caller sees (None: unknown to it)."""
    return store.run(run_id, await _seen(caller, store.catalog.run_keys_named(run_id)))


@dataclass
class _Task:
    run: PipelineRun | None = None
    batches: list[PipelineBatch] | None = None


async def _find_task(store: PipelineStore, caller: Caller, task_id: str, verb: Verb) -> _Task:
    """The run or batch `task_id` among those the caller sees (404 otherwise); 403 unless it
    may `verb` it (a batch: in each of its namespaces it sees)."""
    run = await visible_run(store, task_id, caller=caller)
    if run is not None:
        await caller.require(verb, run.namespace, task_id=task_id)
        return _Task(run=run)
    batches = store.batches(task_id, await _seen(caller, store.catalog.batch_keys_named(task_id)))
    if batches:
        for batch in batches:
            await caller.require(verb, batch.metadata.namespace, task_id=task_id)
        return _Task(batches=batches)
    raise NotFound(f"task {task_id!r} not found", task_id=task_id)


def _batch_status(store: PipelineStore, batches: list[PipelineBatch]) -> TaskStatusOut:
    runs = {
        b.metadata.namespace: store.catalog.runs_of_batch((b.metadata.namespace, b.metadata.name))
        for b in batches
    }
    return mapping.task_status_of_batches(batches, runs)


async def task_status(store: PipelineStore, task_id: str, *, caller: Caller) -> TaskStatusOut:
    task = await _find_task(store, caller, task_id, Verb.READ)
    if task.run is not None:
        return mapping.task_status_of_run(task.run)
    assert task.batches
    return _batch_status(store, task.batches)


async def task_status_with_report(
    store: PipelineStore, task_id: str, *, caller: Caller
) -> TaskStatusOut:
    """`task_status`, with a finished single run's report read from the apiserver."""
    task = await _find_task(store, caller, task_id, Verb.READ)
    if task.run is not None:
        report = await store.report(task.run) if task.run.terminal else None
        return mapping.task_status_of_run(task.run, report=report)
    assert task.batches
    return _batch_status(store, task.batches)


async def _cancel_run(store: PipelineStore, run: PipelineRun) -> None:
    if not run.spec.cancel_requested:
        try:
            run = await store.patch_run(run, CANCEL_PATCH)
        except NotFound:
            raise NotFound(f"task {run.name!r} not found", task_id=run.name) from None
    deleted = await store.delete_run_job(run)
    log.info("run cancel requested", extra={"run": run.name, "job_deleted": deleted})


async def cancel_task(store: PipelineStore, task_id: str, *, caller: Caller) -> CancelOut:
    task = await _find_task(store, caller, task_id, Verb.CANCEL)
    if task.run is not None:
        run = task.run
        if run.terminal:
            raise NotFound(
                f"task {task_id!r} has already finished ({mapping.phase_name(run)})",
                task_id=task_id,
            )
        await _cancel_run(store, run)
        return CancelOut(
            message=f"cancellation of run {task_id!r} requested", task_id=task_id, kind="single"
        )
    batches = task.batches or []
    if mapping.is_batch_finished(batches):
        raise NotFound(
            f"task {task_id!r} has already finished ({mapping.batch_state(batches)})",
            task_id=task_id,
        )
    for batch in batches:
        if batch.state.done:
            continue
        if not batch.spec.cancel_requested:
            try:
                await store.patch_batch(batch, CANCEL_PATCH)
            except NotFound:
                continue
        key = (batch.metadata.namespace, batch.metadata.name)
        for run in store.catalog.runs_of_batch(key):
            if not run.terminal:
                with contextlib.suppress(NotFound):  # deleted meanwhile: nothing to cancel
                    await _cancel_run(store, run)
    return CancelOut(
        message=f"cancellation of batch {task_id!r} requested", task_id=task_id, kind="batch"
    )


async def history(
    store: PipelineStore, archive: HistoryArchive | None, limit: int, *, caller: Caller
) -> tuple[list[HistoryEntryOut], bool]:
    """Newest first, of the namespaces the caller may read; returns (entries, archive_ok)."""
    archived: list[HistoryEntryOut] = []
    archive_ok = True
    finished = store.catalog.finished_runs()
    namespaces = store.namespaces
    if not caller.unrestricted:
        known = known_namespaces(store)
        readable = await caller.where(Verb.READ, known)
        if len(readable) < len(known):
            finished = [r for r in finished if r.namespace in readable]
        # never [] (every namespace) for a restricted caller: the archive may hold others
        namespaces = sorted(readable)
    if archive is not None and (caller.unrestricted or namespaces):
        try:
            archived = await archive.recent(namespaces, limit)
        except ArchiveUnavailable as exc:
            archive_ok = False
            log.warning(
                "archive unavailable, history from the cluster only", extra={"error": exc.detail}
            )
    return mapping.merge_history(finished, archived, limit), archive_ok


async def run_logs(
    store: PipelineStore,
    pod_logs: PodLogSource | None,
    run_id: str,
    *,
    caller: Caller,
    tail_lines: int | None,
    archive: HistoryArchive | None = None,
) -> RunLogsOut:
    """The log of the run's newest pod while it exists (its Job is kept for
    DATAPIPELINES_JOB_TTL_SECONDS after the end), else the runner's log kept with the run
    (head and tail), else the run's report; for a run the history limit removed, the kept log
    the PostgreSQL archive holds."""
    run = await visible_run(store, run_id, caller=caller)
    if run is not None:
        await caller.require(Verb.READ, run.namespace, run_id=run_id)
    if run is None:
        archived = await _archived_log(store, archive, run_id, caller)
        if archived is not None:
            return archived_logs_out(run_id, archived, tail_lines)
        raise NotFound(
            f"run {run_id!r} not found (logs are kept while its PipelineRun exists, and in the "
            "PostgreSQL archive when one is configured)",
            run_id=run_id,
        )
    out = functools.partial(
        RunLogsOut,
        run_id=run_id,
        connection=run.spec.connection_name,
        phase=mapping.phase_name(run),
    )
    if pod_logs is not None:
        log_of_pod = await pod_logs.run_log(run.namespace, run_id, tail_lines=tail_lines)
        if log_of_pod is not None:
            return out(
                source="pod",
                pod=log_of_pod.pod,
                text=log_of_pod.text,
                truncated=log_of_pod.truncated,
            )
    kept = await store.kept_log(run) if run.terminal else None
    if kept is not None:
        return out(source="stored", text=kept_text(kept, tail_lines), truncated=kept.cut_lines > 0)
    report = await store.report(run) or ""
    if not report:
        return out(source="none", text="")
    if tail_lines is not None:
        report = "\n".join(report.splitlines()[-tail_lines:])
    # the runner's flag, else the operator's (a report taken from the termination message)
    flags = (r.report_truncated for r in (run.status.runner_result, run.status.result) if r)
    truncated = bool(next((f for f in flags if f is not None), False))
    return out(source="report", text=report, truncated=truncated)


def kept_text(kept: KeptLog, tail_lines: int | None) -> str:
    text = kept.text()
    if tail_lines is not None:
        text = "\n".join(text.splitlines()[-tail_lines:]) + "\n"
    return text


async def _archived_log(
    store: PipelineStore, archive: HistoryArchive | None, run_id: str, caller: Caller
) -> dict[str, Any] | None:
    """The archive's row of a run gone from the cluster, in a namespace the caller reads."""
    if archive is None:
        return None
    namespaces: list[str] = []
    if not caller.unrestricted:
        namespaces = sorted(await caller.where(Verb.READ, known_namespaces(store)))
        if not namespaces:
            return None
    try:
        return await archive.archived_log(namespaces, run_id)
    except ArchiveUnavailable as exc:
        log.warning("archive unavailable for a run's log", extra={"error": exc.detail})
        return None


def archived_logs_out(run_id: str, row: dict[str, Any], tail_lines: int | None) -> RunLogsOut:
    kept = KeptLog.model_validate(row["log"]) if row.get("log") else None
    return RunLogsOut(
        run_id=run_id,
        connection=str(row.get("connection") or ""),
        phase=str(row.get("phase") or ""),
        source="stored" if kept is not None else "none",
        text=kept_text(kept, tail_lines) if kept is not None else "",
        truncated=bool(kept and kept.cut_lines),
    )
