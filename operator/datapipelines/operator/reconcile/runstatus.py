"""Merge patches of a run's status: the phase, its ``Succeeded`` condition and what goes with
it, written only when something changes. Pure."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from datapipelines.resources.meta import conditions_json, find_condition, with_condition
from datapipelines.resources.run import (
    CONDITION_SUCCEEDED,
    PHASE_CONDITION_STATUS,
    PipelineRun,
    RunPhase,
    RunResult,
    end_reason,
)
from datapipelines.resources.times import format_time


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, RunResult):
        # every key, None included: a merge patch null removes an earlier attempt's leftovers
        return value.model_dump(by_alias=True, mode="json")
    return value


def run_patch(
    run: PipelineRun,
    phase: RunPhase,
    message: str,
    now: datetime,
    **fields: Any,
) -> dict[str, Any] | None:
    """The status patch that puts ``run`` in ``phase`` with ``message`` and ``fields``
    (snake_case names of RunStatus), or None when the run already says exactly that."""
    status = run.status
    desired: dict[str, Any] = {"phase": phase.value, "observedGeneration": run.metadata.generation}
    if status.sequence is None:
        desired["sequence"] = run.metadata.rv()
    if status.queued_at is None:
        desired["queuedAt"] = format_time(run.metadata.creation_timestamp or now)
    camel = {
        "start_time": "startTime",
        "completion_time": "completionTime",
        "job_name": "jobName",
        "job_uid": "jobUid",
        "attempts": "attempts",
        "result": "result",
    }
    for key, value in fields.items():
        desired[camel[key]] = _jsonable(value)
    if phase.terminal:
        result = fields.get("result")
        error = result.error if isinstance(result, RunResult) else None
        desired["reason"] = end_reason(phase, message, error)
    current = run.status.model_dump(by_alias=True, mode="json")
    old = find_condition(status.conditions, CONDITION_SUCCEEDED)
    condition_same = old is not None and old.reason == phase.value and old.message == message
    changed = {k: v for k, v in desired.items() if current.get(k) != v}
    if condition_same and not changed:
        return None
    conditions = with_condition(
        status.conditions,
        type_=CONDITION_SUCCEEDED,
        status=PHASE_CONDITION_STATUS[phase],
        reason=phase.value,
        message=message,
        now=now,
        observed_generation=run.metadata.generation,
    )
    return {**desired, "conditions": conditions_json(conditions)}


def started_patch(
    run: PipelineRun, job_name: str, job_uid: str, created: datetime | None, now: datetime
) -> dict[str, Any] | None:
    """The status of a run whose Job was just created: Running, attempt 1 (its message is the
    one ``status.derive`` gives while that attempt goes on, so nothing is written again until
    something changes)."""
    from ..status import attempt_message

    return run_patch(
        run,
        RunPhase.RUNNING,
        attempt_message(1),
        now,
        start_time=created or now,
        job_name=job_name,
        job_uid=job_uid,
        attempts=1,
    )
