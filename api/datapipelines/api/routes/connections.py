"""/connections: list, status, synchronous and background runs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response

from datapipelines.api import services
from datapipelines.api.deps import ArchiveDep, CallerDep, MetricsDep, ReadyStoreDep, SettingsDep
from datapipelines.api.models import (
    ConflictBody,
    ConnectionOut,
    ConnectionSchemaOut,
    ConnectionStatusOut,
    ErrorBody,
    RunResultOut,
    RunStartedOut,
)
from datapipelines.resources.run import RunOptions

router = APIRouter(prefix="/connections", tags=["connections"])

_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "Unknown connection."}
}
_DUPLICATE = "the name exists in two served namespaces (`namespaces` says which)"
_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {
        "model": ConflictBody,
        "description": "concurrencyPolicy Forbid and a run of this connection is active "
        f"(`active_task_id`), or {_DUPLICATE}.",
    }
}
_DUPLICATE_NAME: dict[int | str, dict[str, Any]] = {
    409: {"model": ConflictBody, "description": f"The connection {_DUPLICATE}."}
}


_STREAM = r" *[A-Za-z0-9_.\-]{1,128} *"
STREAMS_PATTERN = f"^{_STREAM}(,{_STREAM}){{0,99}}$"


def run_options(
    full_refresh: Annotated[
        bool,
        Query(
            description="Re-load from scratch (destructive; addition): the run's streams start "
            "from no cursor and their tables are replaced once the load completes (a refresh "
            "that fails leaves the old data). Never the default.",
        ),
    ] = False,
    streams: Annotated[
        str | None,
        Query(
            description="Comma-separated streams (resources) to run, e.g. to refresh one; the "
            "others are left alone (addition). Default: all. At most 100 names.",
            pattern=STREAMS_PATTERN,
        ),
    ] = None,
    since: Annotated[
        datetime | None,
        Query(
            description="Backfill from this time (RFC 3339): incremental streams start there "
            "for this run; their rows since then are loaded again and merged (addition).",
        ),
    ] = None,
) -> RunOptions | None:
    names = [n.strip() for n in (streams or "").split(",") if n.strip()]
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    if not (full_refresh or names or since):
        return None
    return RunOptions(full_refresh=full_refresh, streams=names, since=since)


RunOptionsDep = Annotated[RunOptions | None, Depends(run_options)]


@router.get("", response_model=list[ConnectionOut], summary="List all connections")
async def list_connections(store: ReadyStoreDep, caller: CallerDep) -> Response:
    # the body is joined from per-connection JSON kept up to date by the catalog (O(n))
    body = await services.list_connections_json(store, caller=caller)
    return Response(body, media_type="application/json")


@router.get(
    "/{name}/status",
    response_model=ConnectionStatusOut,
    responses={**_NOT_FOUND, **_DUPLICATE_NAME},
    summary="Latest status of a connection",
)
async def connection_status(
    name: str, store: ReadyStoreDep, archive: ArchiveDep, caller: CallerDep
) -> ConnectionStatusOut:
    return await services.connection_status(store, archive, name, caller=caller)


@router.get(
    "/{name}/schema",
    response_model=ConnectionSchemaOut,
    responses={**_NOT_FOUND, **_DUPLICATE_NAME},
    summary="What a connection loads: tables, columns, keys (addition)",
)
async def connection_schema(
    name: str, store: ReadyStoreDep, caller: CallerDep
) -> ConnectionSchemaOut:
    """The destination tables and columns (types, primary keys, child tables) as the newest
    successful run reported them, the schema contract and recent schema changes. Answered
    without a pod or a destination connection; `source: none` until a run succeeded."""
    return await services.connection_schema(store, name, caller=caller)


@router.post(
    "/{name}/run",
    response_model=RunResultOut,
    responses={
        **_NOT_FOUND,
        **_CONFLICT,
        500: {"model": ErrorBody, "description": "The run was deleted before it finished."},
        504: {"model": ErrorBody, "description": "Wait limit reached; the run goes on."},
    },
    summary="Run a connection and wait for the result",
    description=(
        "Creates a PipelineRun (trigger `api`) and answers when it ends. A run that ends "
        "Failed or Cancelled answers 200 with `success: false` and `error`; the run goes on "
        "if the client disconnects, visible at `/task_status/{run_id}`."
    ),
)
async def run_connection(
    name: str,
    store: ReadyStoreDep,
    settings: SettingsDep,
    metrics: MetricsDep,
    caller: CallerDep,
    options: RunOptionsDep,
    include_report: bool = Query(False, description="Include the run's report text."),
) -> RunResultOut:
    with metrics.sync_waits.track_inprogress():
        return await services.run_and_wait(
            store,
            name,
            caller=caller,
            include_report=include_report,
            wait_seconds=settings.run_wait_seconds,
            options=options,
        )


@router.post(
    "/{name}/run_async",
    response_model=RunStartedOut,
    responses={**_NOT_FOUND, **_CONFLICT},
    summary="Start a run in the background",
)
async def run_connection_async(
    name: str, store: ReadyStoreDep, caller: CallerDep, options: RunOptionsDep
) -> RunStartedOut:
    return await services.run_async(store, name, caller=caller, options=options)
