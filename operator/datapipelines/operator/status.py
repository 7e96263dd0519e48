"""Job + its pods (+ what the runner already wrote) → the run's observed state. Pure.

Precedence of the result (docs/contracts.md): ``status.result`` written by the runner, else
the last pod's termination message, else an infrastructure error read from the Job and its
pods (DeadlineExceeded, BackoffLimitExceeded, OOMKilled, image pull errors, …). Nothing is
guessed: when the outcome is unknown the message says so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from datapipelines.resources.models import RunPhase

from .config import RUNNER_CONTAINER

#: Container waiting reasons that mean the pod cannot start by itself.
STUCK_WAITING_REASONS = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "ErrImageNeverPull",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
    }
)

# Machine-readable reasons at the start of messages/errors (the condition reason is the phase).
REASON_JOB_DELETED = "JobDeleted"
REASON_CONCURRENCY_FORBIDDEN = "ConcurrencyForbidden"
REASON_REPLACED = "Replaced"
REASON_CONNECTION_NOT_FOUND = "ConnectionNotFound"
REASON_CONNECTION_INVALID = "ConnectionInvalid"
REASON_CANCELLED = "CancelRequested"


@dataclass
class Observed:
    """What the operator should write into a run's status."""

    phase: RunPhase
    message: str = ""
    attempts: int = 0
    start_time: str | None = None
    completion_time: str | None = None
    result: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def terminal(self) -> bool:
        return self.phase.terminal


def _cond(job: dict[str, Any], type_: str) -> dict[str, Any] | None:
    for c in (job.get("status") or {}).get("conditions") or []:
        if c.get("type") == type_ and c.get("status") == "True":
            return c
    return None


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _duration_ms(start: str | None, end: str | None) -> int | None:
    s, e = _parse_time(start), _parse_time(end)
    if s is None or e is None:
        return None
    return max(0, int((e - s).total_seconds() * 1000))


def sort_pods(pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pods oldest first (creationTimestamp, then name)."""
    return sorted(
        pods,
        key=lambda p: (p["metadata"].get("creationTimestamp") or "", p["metadata"]["name"]),
    )


def _runner_status(pod: dict[str, Any]) -> dict[str, Any]:
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        if cs.get("name") == RUNNER_CONTAINER:
            return cs
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return statuses[0] if statuses else {}


def terminated_state(pod: dict[str, Any]) -> dict[str, Any] | None:
    cs = _runner_status(pod)
    return (cs.get("state") or {}).get("terminated") or (cs.get("lastState") or {}).get(
        "terminated"
    )


def waiting_state(pod: dict[str, Any]) -> dict[str, Any] | None:
    cs = _runner_status(pod)
    return (cs.get("state") or {}).get("waiting")


def parse_termination_message(message: str | None) -> dict[str, Any] | None:
    """The runner's JSON result from a termination message, or None if it is not one."""
    if not message:
        return None
    try:
        data = json.loads(message)
    except ValueError:
        return None
    if isinstance(data, dict) and isinstance(data.get("success"), bool):
        return data
    return None


def pod_problem(pod: dict[str, Any]) -> str | None:
    """A human-readable infrastructure problem of one pod, or None."""
    waiting = waiting_state(pod)
    if waiting and waiting.get("reason") in STUCK_WAITING_REASONS:
        return f"{waiting['reason']}: {waiting.get('message') or 'container cannot start'}"
    term = terminated_state(pod)
    if term:
        reason = term.get("reason") or ""
        code = term.get("exitCode")
        if reason == "OOMKilled":
            return f"OOMKilled: the runner exceeded its memory limit (exit code {code})"
        if reason not in ("Completed", "Error", ""):
            return f"{reason}: runner terminated with exit code {code}"
        if code not in (None, 0) and not parse_termination_message(term.get("message")):
            text = (term.get("message") or "").strip()
            suffix = f": {text[:2000]}" if text else ""
            return f"ExitCode{code}: runner exited with code {code}{suffix}"
    pod_status = pod.get("status") or {}
    if pod_status.get("reason") in ("Evicted", "DeadlineExceeded", "Preempting"):
        return f"{pod_status['reason']}: {pod_status.get('message') or ''}".rstrip(": ")
    return None


def count_attempts(job: dict[str, Any] | None, pods: list[dict[str, Any]]) -> int:
    """Pods tried so far: the pods that exist, or the Job's counters if more (pods removed)."""
    counted = 0
    if job:
        st = job.get("status") or {}
        counted = int(st.get("failed") or 0) + int(st.get("succeeded") or 0)
        counted += int(st.get("active") or 0) + int(st.get("terminating") or 0)
    return max(counted, len(pods))


def job_failure(job: dict[str, Any]) -> str:
    """``Reason: message`` of a failed Job (BackoffLimitExceeded, DeadlineExceeded, …)."""
    cond = _cond(job, "Failed") or {}
    reason = cond.get("reason") or "JobFailed"
    message = cond.get("message") or "the Job failed"
    return f"{reason}: {message}"


def _result_from(
    status_result: dict[str, Any] | None,
    pods: list[dict[str, Any]],
    succeeded: bool | None = None,
) -> dict[str, Any] | None:
    """The runner's own result: status.result, else the newest pod's termination message.

    With ``succeeded`` given (the Job's outcome), a result that contradicts it (a failed
    attempt's result left in status when a later attempt succeeded) is skipped.
    """
    candidates: list[dict[str, Any]] = []
    if status_result and isinstance(status_result.get("success"), bool):
        candidates.append(dict(status_result))
    for pod in reversed(sort_pods(pods)):
        term = terminated_state(pod)
        parsed = parse_termination_message((term or {}).get("message"))
        if parsed is not None:
            candidates.append(parsed)
    for candidate in candidates:
        if succeeded is None or candidate["success"] is succeeded:
            return candidate
    return None


def derive(
    *,
    job: dict[str, Any] | None,
    pods: list[dict[str, Any]],
    run_status: dict[str, Any] | None,
    cancel_requested: bool,
    now: str,
) -> Observed:
    """The run's state once its Job exists (or existed). ``job`` None = the Job is gone.

    Only call this for a run that has been started (it has a Job or had one); Queued runs
    are decided by the concurrency module.
    """
    run_status = run_status or {}
    pods = sort_pods(pods)
    attempts = max(count_attempts(job, pods), int(run_status.get("attempts") or 0))
    start = run_status.get("startTime") or (job or {}).get("metadata", {}).get("creationTimestamp")
    runner_result = _result_from(run_status.get("result"), pods)

    def finish(phase: RunPhase, message: str, error: str | None) -> Observed:
        end = now
        if job is not None:
            st = job.get("status") or {}
            end = (
                st.get("completionTime")
                or (_cond(job, "Failed") or {}).get("lastTransitionTime")
                or now
            )
        result: dict[str, Any] = (
            dict(runner_result) if runner_result else {"success": phase is RunPhase.SUCCEEDED}
        )
        if phase is not RunPhase.SUCCEEDED:
            result["success"] = False
            if error and not result.get("error"):
                result["error"] = error
        if result.get("durationMs") is None:
            result["durationMs"] = _duration_ms(start, end)
        return Observed(
            phase=phase,
            message=message,
            attempts=attempts,
            start_time=start,
            completion_time=end,
            result=result,
        )

    if job is None:
        if cancel_requested:
            return finish(RunPhase.CANCELLED, "the run was cancelled", "cancelled by request")
        if runner_result is not None:
            phase = RunPhase.SUCCEEDED if runner_result["success"] else RunPhase.FAILED
            return finish(phase, "the Job is gone; the runner had reported its result", None)
        msg = (
            f"{REASON_JOB_DELETED}: the Job was deleted before the run's outcome was recorded "
            "(not by a cancel request)"
        )
        return finish(RunPhase.FAILED, msg, msg)

    if _cond(job, "Complete"):
        runner_result = _result_from(run_status.get("result"), pods, succeeded=True)
        return finish(RunPhase.SUCCEEDED, "the runner finished successfully", None)

    if _cond(job, "Failed"):
        infra = job_failure(job)
        problems = [p for p in (pod_problem(p) for p in pods) if p]
        detail = problems[-1] if problems else None
        if runner_result is not None and runner_result.get("error"):
            error = runner_result["error"]
            message = f"{infra}; runner: {error}"
        else:
            error = f"{infra} ({detail})" if detail else infra
            message = error
        if cancel_requested:
            return finish(RunPhase.CANCELLED, "the run was cancelled", error)
        return finish(RunPhase.FAILED, message[:32000], error[:32000])

    if cancel_requested:
        # Still there: the caller deletes it; until it is gone the run is Running.
        return Observed(
            phase=RunPhase.RUNNING,
            message="cancel requested: deleting the Job",
            attempts=attempts,
            start_time=start,
        )

    current = pods[-1] if pods else None
    if current is None:
        message = "Job created, waiting for its pod"
    else:
        problem = pod_problem(current)
        pod_phase = str((current.get("status") or {}).get("phase") or "Pending")
        if problem:
            message = f"attempt {attempts}: {problem}"
        elif pod_phase == "Pending":
            message = f"attempt {attempts}: pod pending"
        else:
            message = f"attempt {attempts}: runner {pod_phase.lower()}"
    return Observed(phase=RunPhase.RUNNING, message=message, attempts=attempts, start_time=start)
