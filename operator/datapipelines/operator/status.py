"""A started run's Job + pods (+ the runner's own report) → the run's observed state. Pure.

Precedence of the result (docs/ownership.md): the runner's ``status.runnerResult``, else the
newest pod's termination message, else an infrastructure error read from the Job and its pods
(DeadlineExceeded, BackoffLimitExceeded, OOMKilled, image pull errors, …). A result that
contradicts the Job's outcome (an earlier attempt's) is skipped. Nothing is guessed: when the
outcome is unknown the message says so.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from pydantic import ValidationError

from datapipelines.resources.run import (
    PipelineRun,
    ResultSource,
    RunnerResult,
    RunPhase,
    RunResult,
)
from datapipelines.resources.times import duration_ms

from .views import JobView, PodView

#: Container waiting reasons that mean the pod cannot start by itself (for the message; the
#: run fails on them only after startTimeoutSeconds: image pulls and Secrets may recover).
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

# Machine-readable causes at the start of messages/errors (the condition reason is the phase).
REASON_JOB_DELETED = "JobDeleted"
REASON_INVALID_REPORT = "InvalidRunnerReport"
#: Largest termination message read: the kubelet keeps 4 KiB of a real one; a forged pod
#: status is not bounded by that.
TERMINATION_MESSAGE_READ_LIMIT = 64 * 1024
REASON_JOB_REJECTED = "JobRejected"
REASON_JOB_QUOTA = "JobQuotaExceeded"
REASON_POD_NOT_STARTED = "PodNotStarted"
REASON_CONCURRENCY_FORBIDDEN = "ConcurrencyForbidden"
REASON_REPLACED = "Replaced"
REASON_CONNECTION_NOT_FOUND = "ConnectionNotFound"
REASON_CONNECTION_INVALID = "ConnectionInvalid"
REASON_CANCELLED = "CancelRequested"


@dataclass(frozen=True)
class Observed:
    """What the run's status should say, and what the caller must do about its Job."""

    phase: RunPhase
    message: str = ""
    attempts: int = 0
    start_time: datetime | None = None
    completion_time: datetime | None = None
    result: RunResult | None = None
    delete_job: bool = False
    """The Job must go: a cancel request, or a pod that did not start in time."""
    recheck_at: datetime | None = None
    """When to look again even without an event (the start deadline)."""
    read_warning_of: PodView | None = None
    """A pod past the start deadline whose events were not read yet: read them, then decide."""

    @property
    def terminal(self) -> bool:
        return self.phase.terminal


def parse_termination_message(message: str | None) -> RunnerResult | None:
    """The runner's JSON result from a termination message, or None if it is not one. Never
    raises: the message is written by code the operator does not trust (2000 ``[`` make
    ``json.loads`` raise RecursionError; a forged pod status is not size-bounded)."""
    if not message or len(message) > TERMINATION_MESSAGE_READ_LIMIT:
        return None
    if not message.lstrip().startswith("{"):
        return None
    try:
        data = json.loads(message)
    except (ValueError, RecursionError, MemoryError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("success"), bool):
        return None
    try:
        return RunnerResult.model_validate(data)
    except (ValidationError, RecursionError, ValueError, TypeError):
        return None


def pod_problem(pod: PodView) -> str | None:
    """A human-readable infrastructure problem of one pod, or None."""
    c = pod.container
    if c.waiting_reason in STUCK_WAITING_REASONS:
        return f"{c.waiting_reason}: {c.waiting_message or 'container cannot start'}"
    if c.terminated:
        if c.reason == "OOMKilled":
            return f"OOMKilled: the runner exceeded its memory limit (exit code {c.exit_code})"
        if c.reason not in ("Completed", "Error", ""):
            return f"{c.reason}: runner terminated with exit code {c.exit_code}"
        if c.exit_code not in (None, 0) and parse_termination_message(c.message) is None:
            text = last_error_line(c.message)
            suffix = f": {text[:2000]}" if text else ""
            return f"ExitCode{c.exit_code}: runner exited with code {c.exit_code}{suffix}"
    if pod.reason in ("Evicted", "DeadlineExceeded", "Preempting"):
        return f"{pod.reason}: {pod.message}".rstrip(": ")
    if pod.unschedulable:
        return pod.unschedulable
    return None


def last_error_line(tail: str) -> str:
    """What a crashed runner said last (its termination message is then the end of its log):
    the message of the last error line of the log schema, else the last line (pure)."""
    lines = [line.strip() for line in (tail or "").splitlines() if line.strip()]
    for line in reversed(lines):
        if not line.startswith("{"):
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("level") in ("error", "critical"):
            return str(entry.get("msg") or "")
    return lines[-1] if lines else ""


def started(pod: PodView) -> bool:
    return pod.container.running or pod.container.terminated or pod.phase in ("Running",)


def count_attempts(job: JobView | None, pods: list[PodView]) -> int:
    """Pods tried so far: the pods that exist, or the Job's counters if more (pods removed)."""
    counted = 0
    if job is not None:
        counted = job.failed + job.succeeded + job.active + job.terminating
    return max(counted, len(pods))


def job_failure(job: JobView) -> str:
    """``Reason: message`` of a failed Job (BackoffLimitExceeded, DeadlineExceeded, …)."""
    cond = job.condition("Failed")
    reason = (cond.reason if cond else "") or "JobFailed"
    message = (cond.message if cond else "") or "the Job failed"
    return f"{reason}: {message}"


def runner_result(
    run: PipelineRun, pods: list[PodView], succeeded: bool | None = None
) -> tuple[RunnerResult | None, ResultSource | None]:
    """The runner's own result: status.runnerResult, else the newest pod's termination message
    (pods oldest first). With ``succeeded`` (the Job's outcome) a contradicting one is skipped."""
    candidates: list[tuple[RunnerResult, ResultSource]] = []
    reported = run.status.runner_result
    newest = pods[-1] if pods else None
    stale = (
        reported is not None
        and reported.pod_name is not None
        and newest is not None
        and reported.pod_name != newest.name
        and parse_termination_message(newest.container.message) is not None
    )
    if reported is not None and not stale:
        candidates.append((reported, ResultSource.RUNNER))
    for pod in reversed(pods):
        parsed = parse_termination_message(pod.container.message)
        if parsed is not None:
            candidates.append((parsed, ResultSource.TERMINATION_MESSAGE))
    if reported is not None and stale:
        candidates.append((reported, ResultSource.RUNNER))
    for candidate, source in candidates:
        if succeeded is None or candidate.success is succeeded:
            return candidate, source
    return None, None


def _result(
    phase: RunPhase,
    found: tuple[RunnerResult | None, ResultSource | None],
    error: str | None,
    start: datetime | None,
    end: datetime | None,
) -> RunResult:
    runner, source = found
    if runner is not None:
        data = runner.model_dump(exclude={"pod_name", "loaded_schema", "log"})
        if source is ResultSource.RUNNER:
            data["report"] = None  # it stays in status.runnerResult; no second copy
        result = RunResult(**data, source=source)
    else:
        result = RunResult(success=phase is RunPhase.SUCCEEDED, source=ResultSource.OPERATOR)
    if phase is not RunPhase.SUCCEEDED:
        result.success = False
        if error and not result.error:
            result.error = error
    if result.duration_ms is None:
        result.duration_ms = duration_ms(start, end)
    return result


def derive(
    *,
    run: PipelineRun,
    job: JobView | None,
    pods: list[PodView],
    cancel_requested: bool,
    start_timeout_seconds: int,
    now: datetime,
    pod_warnings: Mapping[str, str] | None = None,
) -> Observed:
    """The state of a run whose Job exists or existed (``job`` None = it is gone).

    ``pod_warnings``: the newest Warning event of pods already asked about (by pod uid, "" for
    none); with it, a pod past the start deadline is first asked about (``read_warning_of``),
    and the run fails naming the event's cause (the kubelet reports a missing Secret only
    there). Without it the run fails at the deadline with what the pod's status says."""
    attempts = max(count_attempts(job, pods), run.status.attempts or 0)
    start = run.status.start_time or (job.created if job else None)

    def finish(
        phase: RunPhase, message: str, error: str | None, succeeded: bool | None
    ) -> Observed:
        end = now
        if job is not None:
            failed = job.condition("Failed")
            end = job.completion_time or (failed.last_transition_time if failed else None) or now
        found = runner_result(run, pods, succeeded)
        return Observed(
            phase=phase,
            message=message[:32000],
            attempts=attempts,
            start_time=start,
            completion_time=end,
            result=_result(phase, found, error[:32000] if error else None, start, end),
        )

    if run.runner_report_problem and not cancel_requested:
        error = f"{REASON_INVALID_REPORT}: {run.runner_report_problem}"
        observed = finish(RunPhase.FAILED, error, error, False)
        alive = job is not None and not (job.condition("Complete") or job.condition("Failed"))
        return replace(observed, delete_job=alive)

    if job is None:
        if cancel_requested:
            return finish(RunPhase.CANCELLED, "the run was cancelled", "cancelled by request", None)
        found, _ = runner_result(run, pods)
        if found is not None:
            phase = RunPhase.SUCCEEDED if found.success else RunPhase.FAILED
            return finish(phase, "the Job is gone; the runner had reported its result", None, None)
        msg = (
            f"{REASON_JOB_DELETED}: the Job was deleted before the run's outcome was recorded "
            "(not by a cancel request)"
        )
        return finish(RunPhase.FAILED, msg, msg, None)

    if job.condition("Complete"):
        return finish(RunPhase.SUCCEEDED, "the runner finished successfully", None, True)

    if job.condition("Failed"):
        infra = job_failure(job)
        problems = [p for p in (pod_problem(p) for p in pods) if p]
        runner, _ = runner_result(run, pods, False)
        if runner is not None and runner.error:
            error, message = runner.error, f"{infra}; runner: {runner.error}"
        else:
            error = f"{infra} ({problems[-1]})" if problems else infra
            message = error
        if cancel_requested:
            return finish(RunPhase.CANCELLED, "the run was cancelled", error, False)
        return finish(RunPhase.FAILED, message, error, False)

    if cancel_requested:
        return Observed(
            phase=RunPhase.RUNNING,
            message="cancel requested: deleting the Job",
            attempts=attempts,
            start_time=start,
            delete_job=True,
        )

    current = pods[-1] if pods else None
    waiting_since = (current.created if current else None) or job.created or now
    deadline = waiting_since + timedelta(seconds=start_timeout_seconds)
    attempt = max(attempts, 1)
    if current is not None and started(current):
        problem = pod_problem(current)
        message = attempt_message(attempt, problem)
        return Observed(phase=RunPhase.RUNNING, message=message, attempts=attempt, start_time=start)
    problem = pod_problem(current) if current is not None else None
    if now >= deadline:
        warning = None
        if problem is None and current is not None and pod_warnings is not None:
            warning = pod_warnings.get(current.uid)
            if warning is None:
                return Observed(
                    phase=RunPhase.RUNNING,
                    message=attempt_message(attempt, problem),
                    attempts=attempt,
                    start_time=start,
                    read_warning_of=current,
                )
        why = (
            problem
            or warning
            or ("the pod was not created" if current is None else f"the pod is {current.phase}")
        )
        error = (
            f"{REASON_POD_NOT_STARTED}: the runner's pod did not start within "
            f"{start_timeout_seconds} s (startTimeoutSeconds): {why}"
        )
        return Observed(
            phase=RunPhase.FAILED,
            message=error,
            attempts=attempt,
            start_time=start,
            completion_time=now,
            result=_result(RunPhase.FAILED, (None, None), error, start, now),
            delete_job=True,
        )
    return Observed(
        phase=RunPhase.RUNNING,
        message=attempt_message(attempt, problem),
        attempts=attempt,
        start_time=start,
        recheck_at=deadline,
    )


def attempt_message(attempt: int, problem: str | None = None) -> str:
    """The Running condition's message: the attempt, and a problem when there is one. It does
    not follow every pod transition (pending, running): each change is a status write."""
    return f"attempt {attempt}: {problem}" if problem else f"attempt {attempt}"
