"""Tasks: batches (/run_selected), status and cancellation of runs and batches."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from datapipelines.api import services
from datapipelines.api.deps import CallerDep, ReadyStoreDep
from datapipelines.api.models import BatchStartedOut, CancelOut, ErrorBody, TaskStatusOut

router = APIRouter(tags=["tasks"])

_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "Unknown task."}
}
_AMBIGUOUS: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorBody, "description": "The task id names runs in two served namespaces."}
}


@router.post(
    "/run_selected",
    response_model=BatchStartedOut,
    summary="Run all enabled connections as a batch",
    description="The enabled connections of the namespaces where the caller may run (403 "
    "when it may run in none).",
)
async def run_selected(store: ReadyStoreDep, caller: CallerDep) -> BatchStartedOut:
    return await services.run_selected(store, caller=caller)


@router.post(
    "/cancel_task/{task_id}",
    response_model=CancelOut,
    responses={
        404: {"model": ErrorBody, "description": "Unknown or already finished task."},
        **_AMBIGUOUS,
    },
    summary="Cancel a run or a batch",
)
async def cancel_task(task_id: str, store: ReadyStoreDep, caller: CallerDep) -> CancelOut:
    return await services.cancel_task(store, task_id, caller=caller)


@router.get(
    "/task_status/{task_id}",
    response_model=TaskStatusOut,
    responses={**_NOT_FOUND, **_AMBIGUOUS},
    summary="Status of a run (kind single) or a batch (kind batch)",
)
async def task_status(task_id: str, store: ReadyStoreDep, caller: CallerDep) -> TaskStatusOut:
    return await services.task_status_with_report(store, task_id, caller=caller)
