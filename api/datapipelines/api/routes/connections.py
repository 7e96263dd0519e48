"""/connections: list, status, synchronous and background runs."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Response

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
    include_report: bool = Query(False, description="Include the run's report text."),
) -> RunResultOut:
    with metrics.sync_waits.track_inprogress():
        return await services.run_and_wait(
            store,
            name,
            caller=caller,
            include_report=include_report,
            wait_seconds=settings.run_wait_seconds,
        )


@router.post(
    "/{name}/run_async",
    response_model=RunStartedOut,
    responses={**_NOT_FOUND, **_CONFLICT},
    summary="Start a run in the background",
)
async def run_connection_async(name: str, store: ReadyStoreDep, caller: CallerDep) -> RunStartedOut:
    return await services.run_async(store, name, caller=caller)
