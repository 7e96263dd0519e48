"""/pipelines: the connections again (same shape), optionally only the enabled ones."""

from __future__ import annotations

from fastapi import APIRouter, Query, Response

from datapipelines.api import services
from datapipelines.api.deps import CallerDep, ReadyStoreDep
from datapipelines.api.models import ConnectionOut

router = APIRouter(prefix="/pipelines", tags=["pipelines"])


@router.get("", response_model=list[ConnectionOut], summary="List all pipelines")
async def list_pipelines(
    store: ReadyStoreDep,
    caller: CallerDep,
    only_enabled: bool = Query(False, description="Only connections with enabled: true."),
) -> Response:
    body = await services.list_connections_json(store, caller=caller, only_enabled=only_enabled)
    return Response(body, media_type="application/json")
