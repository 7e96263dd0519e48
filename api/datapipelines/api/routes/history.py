"""/history: finished runs, newest first (cluster runs merged with the PostgreSQL archive)."""

from __future__ import annotations

from fastapi import APIRouter, Query, Response

from datapipelines.api import services
from datapipelines.api.deps import ArchiveDep, CallerDep, ReadyStoreDep
from datapipelines.api.models import HistoryEntryOut

router = APIRouter(prefix="/history", tags=["history"])

ARCHIVE_HEADER = "X-DataPipelines-History-Archive"


@router.get("", response_model=list[HistoryEntryOut], summary="Recent finished runs")
async def history(
    response: Response,
    store: ReadyStoreDep,
    archive: ArchiveDep,
    caller: CallerDep,
    limit: int = Query(10, ge=1, le=1000, description="How many entries, 1 to 1000."),
) -> list[HistoryEntryOut]:
    entries, archive_ok = await services.history(store, archive, limit, caller=caller)
    if archive is None:
        response.headers[ARCHIVE_HEADER] = "not-configured"
    else:
        response.headers[ARCHIVE_HEADER] = "ok" if archive_ok else "unavailable"
    return entries
