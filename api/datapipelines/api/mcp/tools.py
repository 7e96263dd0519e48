"""The MCP tools: one per capability of the REST API, each a thin wrapper over `services.*`.

Inputs are typed (their JSON schema, descriptions included, is what an agent sees), outputs are
the REST API's pydantic models (structured content), and a service error (`ApiError`) becomes a
tool error carrying the REST API's message plus the MCP way to act on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import Field

from datapipelines.api import services
from datapipelines.api.access import Caller
from datapipelines.api.errors import ApiError, Conflict, NotFound, WaitTimeout
from datapipelines.api.mcp.deps import ToolDeps
from datapipelines.api.mcp.models import ConnectionList, HistoryOut, WaitOut
from datapipelines.api.mcp.progress import ProgressNotifier
from datapipelines.api.models import (
    BatchStartedOut,
    CancelOut,
    ConnectionSchemaOut,
    ConnectionStatusOut,
    RunLogsOut,
    RunResultOut,
    RunStartedOut,
    TaskStatusOut,
)
from datapipelines.resources.run import RunOptions

log = logging.getLogger(__name__)

DEFAULT_WAIT_SECONDS = 600
MAX_WAIT_SECONDS = 6 * 3600

ConnectionName = Annotated[
    str,
    Field(
        min_length=1,
        description="The connection's name, exactly as list_connections gives it.",
    ),
]
TaskId = Annotated[
    str,
    Field(
        min_length=1,
        description="A task id: a run id (from run_connection, start_run, a batch's `runs`, "
        "history) or a batch id (from run_all_enabled).",
    ),
]
RunId = Annotated[
    str,
    Field(
        min_length=1,
        description="A run id: the task_id of start_run, or a run_id of a batch's `runs`.",
    ),
]
IncludeReport = Annotated[
    bool,
    Field(description="Also return the run's human-readable report (can be long)."),
]

_READ = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)
_START = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False)
_CANCEL = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True)

INSTRUCTIONS = """\
datapipelines syncs data: each *connection* (a REST API, a SQL database or files) is loaded
into a destination schema (PostgreSQL or DuckDB) by a *run*, a Kubernetes Job. Start with
list_connections for the valid names. run_connection runs one and waits for the result (with
progress notifications); start_run starts one in the background and returns a task id to follow
with wait_for_run or task_status; run_all_enabled starts a batch of every enabled connection.
cancel_task stops a run or a batch; history lists finished runs; connection_status says how the
last run of one connection went. A failed sync is a normal result (success false, error set),
not a tool error; tool errors are for unknown names, a run already active under the Forbid
policy (the message names it and how to cancel it), or the cluster being unreachable."""

LIST_CONNECTIONS = """\
List the data-sync connections this server can run, sorted by name: name, source type (a SaaS
type: trello, hubspot, intercom, calendly, pandadoc, wassenger, fireflies; or rest_api,
sql_database, filesystem), enabled, destination schema_name, concurrency_policy, cron
schedule, last_run_at (start of the last finished run) and active_runs (run ids not finished
yet). Call it first to learn the valid connection names. only_enabled=true keeps the
connections run_all_enabled would run. Instant (answered from a cache)."""

CONNECTION_STATUS = """\
The latest status of one connection: its fields plus its last finished run (last_run_at,
last_run_success, last_run_error, last_run_duration_ms, last_run_attempts, last_run_id; all
null if it never ran). Use it to see whether the last sync worked without starting a new one.
Instant. Tool error if the connection does not exist."""

CONNECTION_SCHEMA = """\
What one connection loads into its destination schema: every table (with its parent for a
child table made from a nested list, and its write disposition) and every column with its
type, nullability and primary key, as the newest successful run reported them; plus the
connection's schema contract and the schema changes its recent runs made (tables and columns
added, types changed). Use it to write a query against the loaded data or to see what a run
changed, without opening the warehouse. Instant; source is "none" until a run succeeded. Tool
error if the connection does not exist."""

RUN_LOGS = """\
The log of one run (task_id of a single run): its pod's log while the Job exists, then the
runner's own log lines kept with the run (the first lines and the last ones, with how many were
cut between), else its report. source says which (pod, stored, report, none). Use it to find why
a run failed (the error and the lines before it), also the morning after, when its pod is gone.
tail_lines keeps only the last lines. Instant. Tool error if the run does not exist."""

RUN_CONNECTION = """\
Run one connection's sync now and wait until it ends; returns the result: success,
rows_inserted, records_reported, duration_ms, attempts, error, run_id, status
(succeeded|failed|cancelled), progress_counts, and report when include_report is true. While
it runs, sends MCP progress notifications (phase, stage, records extracted, rows per table)
if the call has a progressToken. Takes as long as the sync: seconds for small sources, many
minutes for large ones (at most the connection's timeout x (retries + 1)); for long syncs
prefer start_run and wait_for_run. A sync that fails or is cancelled is a normal result with
success false and error set. Tool errors: unknown connection; the connection already has an
active run and its concurrencyPolicy is Forbid (the message names that run: wait for it with
wait_for_run or stop it with cancel_task); the wait limit passed (the run goes on).
full_refresh (destructive: the tables are replaced), streams (only these) and since (a backfill
from a time) change what the run does; use them only when the user asks."""

START_RUN = """\
Start one connection's sync in the background and return at once with its task_id (the run
id) and a message. Follow it with wait_for_run (blocks, with progress) or task_status (instant
snapshot); stop it with cancel_task. Tool errors as for run_connection: unknown connection, or
an active run under the Forbid policy (named in the message).
Takes full_refresh, streams and since like run_connection."""

RUN_ALL_ENABLED = """\
Start one batch that runs every enabled connection, one after another, in the background;
returns at once with the batch's task_id and the connection names it covers (none enabled: an
empty batch that finishes at once). Follow it with task_status (kind batch: status, current,
completed, and runs with each connection's run_id, phase, success and error); cancel_task on
the batch id stops the rest of it. A whole batch takes the sum of its syncs' times."""

TASK_STATUS = """\
Instant snapshot of a task by task_id. A run (kind single): status
(queued|running|finished|cancelled), active, phase (Queued|Running|Succeeded|Failed|Cancelled),
started_at, finished_at, attempts, live progress (stage, records_extracted, rows per table)
and, once ended, result (the run_connection fields, report included) and error. A batch (kind
batch): status, connections, current, completed, canceled and runs (per connection: run_id,
phase, success, error). Call it again to poll, or use wait_for_run for one run."""

WAIT_FOR_RUN = """\
Wait until one run (a task_id from start_run, or a run_id from a batch's runs) ends, sending
progress notifications meanwhile, and return ended plus the run's task status (with result and
error once ended). Returns early with ended false and the current status after
timeout_seconds (default 600): call it again to keep waiting. Ending the wait never affects the
run. Tool error for an unknown task id, or a batch id (follow its runs instead)."""

CANCEL_TASK = """\
Cancel a run or a whole batch by task_id: the run's Job is stopped and it ends as Cancelled
(status cancelled, success false); for a batch, its active run is cancelled and the rest never
start. Returns at once with a message; the run winds down within seconds (task_status shows
it). Asking again while it winds down is fine. Tool error if the task is unknown or has already
finished."""

HISTORY = """\
Finished runs, newest first: run_id, connection, kind (single, or batch when part of one),
trigger (api|schedule|batch|manual), status (succeeded|failed|cancelled), success, started_at,
finished_at, duration_ms, rows_inserted, records_reported, attempts, error. Includes the
PostgreSQL archive when one is configured (archive says whether it could be read). Instant."""


def tool_error_message(exc: ApiError) -> str:
    """The REST API's message, plus how to act on it with the MCP tools."""
    active = exc.extra.get("active_task_id")
    run_id = exc.extra.get("run_id")
    if isinstance(exc, Conflict) and active:
        hint = (
            f"With MCP: wait_for_run(task_id={active!r}) waits for it, "
            f"cancel_task(task_id={active!r}) cancels it."
        )
    elif isinstance(exc, WaitTimeout) and run_id:
        hint = f"With MCP: wait_for_run(task_id={run_id!r}) or task_status(task_id={run_id!r})."
    elif isinstance(exc, NotFound) and "connection" in exc.extra:
        hint = "list_connections gives the valid names."
    elif isinstance(exc, NotFound) and "task_id" in exc.extra:
        hint = "Task ids come from run_connection, start_run, run_all_enabled or history."
    else:
        return exc.detail
    return f"{exc.detail}. {hint}"


def caller_of(ctx: Context) -> Caller:
    """The caller the endpoint's gate authenticated (kept in the HTTP request's state)."""
    request = ctx.request_context.request
    caller = getattr(getattr(request, "state", None), "caller", None)
    if not isinstance(caller, Caller):
        raise ToolError("no authenticated caller for this request")
    return caller


@contextlib.contextmanager
def _tool_call(tool: str, ctx: Context, **fields: str) -> Iterator[Caller]:
    """Logs the call (structured, with the caller: the audit of a state-changing tool) and
    turns a service error into a tool error; yields the caller."""
    started = time.perf_counter()
    outcome = "ok"
    caller = caller_of(ctx)
    try:
        yield caller
    except ApiError as exc:
        outcome = type(exc).__name__
        raise ToolError(tool_error_message(exc)) from exc
    except asyncio.CancelledError:
        outcome = "cancelled"
        raise
    except BaseException:
        outcome = "crashed"
        raise
    finally:
        log.info(
            "mcp tool call",
            extra={
                "tool": tool,
                "caller": caller.id,
                **fields,
                "outcome": outcome,
                "duration_ms": int((time.perf_counter() - started) * 1000),
            },
        )


def _progress_sender(ctx: Context) -> ProgressNotifier:
    async def send(progress: float, message: str) -> None:
        await ctx.report_progress(progress, None, message)

    return ProgressNotifier(send)


FullRefresh = Annotated[
    bool,
    Field(
        description="Re-load from scratch: DESTRUCTIVE — the streams' tables are replaced by "
        "what this run loads and their cursors start again. Only when the user asked for it."
    ),
]
Streams = Annotated[
    list[str] | None,
    Field(
        max_length=100,
        description="Run only these streams (resources), e.g. with full_refresh to re-load one "
        "table; the others are left alone. Default: all.",
    ),
]
Since = Annotated[
    datetime | None,
    Field(
        description="Backfill: incremental streams start from this time (RFC 3339) for this "
        "run; rows since then are loaded again and merged."
    ),
]


def run_options(
    full_refresh: bool, streams: list[str] | None, since: datetime | None
) -> RunOptions | None:
    if not (full_refresh or streams or since):
        return None
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    return RunOptions(full_refresh=full_refresh, streams=streams or [], since=since)


def register_tools(server: MCPServer, deps: ToolDeps) -> None:
    """Add the tools to `server`; each one reads `deps` exactly as its REST route does."""
    store, archive, settings = deps.store, deps.archive, deps.settings

    @server.tool(
        name="list_connections",
        title="List connections",
        description=LIST_CONNECTIONS,
        annotations=_READ,
    )
    async def list_connections(
        ctx: Context,
        only_enabled: Annotated[
            bool, Field(description="Only the connections with enabled: true.")
        ] = False,
    ) -> ConnectionList:
        with _tool_call("list_connections", ctx) as caller:
            store.ensure_ready()
            found = await services.list_connections(store, caller=caller, only_enabled=only_enabled)
            return ConnectionList(connections=found)

    @server.tool(
        name="connection_status",
        title="Status of a connection",
        description=CONNECTION_STATUS,
        annotations=_READ,
    )
    async def connection_status(name: ConnectionName, ctx: Context) -> ConnectionStatusOut:
        with _tool_call("connection_status", ctx, connection=name) as caller:
            store.ensure_ready()
            return await services.connection_status(store, archive, name, caller=caller)

    @server.tool(
        name="connection_schema",
        title="Tables and columns a connection loads",
        description=CONNECTION_SCHEMA,
        annotations=_READ,
    )
    async def connection_schema(name: ConnectionName, ctx: Context) -> ConnectionSchemaOut:
        with _tool_call("connection_schema", ctx, connection=name) as caller:
            store.ensure_ready()
            return await services.connection_schema(store, name, caller=caller)

    @server.tool(
        name="run_logs",
        title="The log of a run",
        description=RUN_LOGS,
        annotations=_READ,
    )
    async def run_logs(
        run_id: Annotated[str, Field(min_length=1, description="The run's id (its task_id).")],
        ctx: Context,
        tail_lines: Annotated[
            int | None, Field(ge=1, le=100000, description="Only the last lines.")
        ] = None,
    ) -> RunLogsOut:
        with _tool_call("run_logs", ctx, run=run_id) as caller:
            store.ensure_ready()
            return await services.run_logs(
                store,
                deps.pod_logs,
                run_id,
                caller=caller,
                tail_lines=tail_lines,
                archive=archive,
            )

    @server.tool(
        name="run_connection",
        title="Run a connection and wait",
        description=RUN_CONNECTION,
        annotations=_START,
    )
    async def run_connection(
        name: ConnectionName,
        ctx: Context,
        include_report: IncludeReport = False,
        full_refresh: FullRefresh = False,
        streams: Streams = None,
        since: Since = None,
    ) -> RunResultOut:
        with _tool_call("run_connection", ctx, connection=name) as caller:
            store.ensure_ready()
            async with _progress_sender(ctx) as notify:
                return await services.run_and_follow(
                    store,
                    name,
                    caller=caller,
                    include_report=include_report,
                    wait_seconds=settings.run_wait_seconds,
                    on_update=notify,
                    options=run_options(full_refresh, streams, since),
                )

    @server.tool(
        name="start_run",
        title="Start a run in the background",
        description=START_RUN,
        annotations=_START,
    )
    async def start_run(
        name: ConnectionName,
        ctx: Context,
        full_refresh: FullRefresh = False,
        streams: Streams = None,
        since: Since = None,
    ) -> RunStartedOut:
        with _tool_call("start_run", ctx, connection=name) as caller:
            store.ensure_ready()
            options = run_options(full_refresh, streams, since)
            return await services.run_async(store, name, caller=caller, options=options)

    @server.tool(
        name="run_all_enabled",
        title="Run all enabled connections (batch)",
        description=RUN_ALL_ENABLED,
        annotations=_START,
    )
    async def run_all_enabled(ctx: Context) -> BatchStartedOut:
        with _tool_call("run_all_enabled", ctx) as caller:
            store.ensure_ready()
            return await services.run_selected(store, caller=caller)

    @server.tool(
        name="task_status",
        title="Status of a run or batch",
        description=TASK_STATUS,
        annotations=_READ,
    )
    async def task_status(task_id: TaskId, ctx: Context) -> TaskStatusOut:
        with _tool_call("task_status", ctx, task_id=task_id) as caller:
            store.ensure_ready()
            return await services.task_status_with_report(store, task_id, caller=caller)

    @server.tool(
        name="wait_for_run",
        title="Wait for a run to end",
        description=WAIT_FOR_RUN,
        annotations=_READ,
    )
    async def wait_for_run(
        task_id: RunId,
        ctx: Context,
        timeout_seconds: Annotated[
            int,
            Field(ge=1, le=MAX_WAIT_SECONDS, description="How long to wait at most, in seconds."),
        ] = DEFAULT_WAIT_SECONDS,
    ) -> WaitOut:
        with _tool_call("wait_for_run", ctx, task_id=task_id) as caller:
            store.ensure_ready()
            last: TaskStatusOut | None = None
            async with _progress_sender(ctx) as notify:
                updates = services.follow_run(store, task_id, caller=caller)
                async with contextlib.aclosing(updates):
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(timeout_seconds):
                            async for last in updates:
                                if last.active:
                                    await notify(last)
            if last is None:  # timed out before the first state: cannot happen with a cache
                last = await services.task_status(store, task_id, caller=caller)
            return WaitOut(ended=not last.active, task=last)

    @server.tool(
        name="cancel_task",
        title="Cancel a run or batch",
        description=CANCEL_TASK,
        annotations=_CANCEL,
    )
    async def cancel_task(task_id: TaskId, ctx: Context) -> CancelOut:
        with _tool_call("cancel_task", ctx, task_id=task_id) as caller:
            store.ensure_ready()
            return await services.cancel_task(store, task_id, caller=caller)

    @server.tool(
        name="history",
        title="Recent finished runs",
        description=HISTORY,
        annotations=_READ,
    )
    async def history(
        ctx: Context,
        limit: Annotated[
            int, Field(ge=1, le=1000, description="How many entries, newest first.")
        ] = 10,
    ) -> HistoryOut:
        with _tool_call("history", ctx) as caller:
            store.ensure_ready()
            entries, archive_ok = await services.history(store, archive, limit, caller=caller)
            state: Literal["ok", "unavailable", "not-configured"] = "not-configured"
            if archive is not None:
                state = "ok" if archive_ok else "unavailable"
            return HistoryOut(entries=entries, archive=state)
