"""/runs: what a run left behind (addition to the contract): its pod's log, else its report."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from datapipelines.api import services
from datapipelines.api.deps import ArchiveDep, CallerDep, PodLogsDep, ReadyStoreDep
from datapipelines.api.models import ErrorBody, RunLogsOut

router = APIRouter(prefix="/runs", tags=["runs"])

_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "Unknown run (or its PipelineRun is gone)."}
}


@router.get(
    "/{run_id}/logs",
    response_model=RunLogsOut,
    responses=_NOT_FOUND,
    summary="The log of a run: its pod's, then the one kept with the run (or in the archive)",
)
async def run_logs(
    run_id: str,
    store: ReadyStoreDep,
    pod_logs: PodLogsDep,
    archive: ArchiveDep,
    caller: CallerDep,
    tail_lines: int | None = Query(
        None, ge=1, le=100_000, description="Only the last lines of the log (or report)."
    ),
) -> RunLogsOut:
    return await services.run_logs(
        store, pod_logs, run_id, caller=caller, tail_lines=tail_lines, archive=archive
    )
