"""status.derive: Job + pods (+ what the runner wrote) → the run's state, never guessed."""

from __future__ import annotations

import json
from typing import Any

from datapipelines.operator.status import (
    count_attempts,
    derive,
    parse_termination_message,
    pod_problem,
)
from datapipelines.resources.models import RunPhase

NOW = "2026-11-30T08:10:00Z"
START = "2026-11-30T08:00:00Z"


def job(*conditions: tuple[str, str, str], **counts: int) -> dict[str, Any]:
    return {
        "metadata": {"name": "r", "creationTimestamp": START},
        "status": {
            "conditions": [
                {
                    "type": t,
                    "status": "True",
                    "reason": reason,
                    "message": msg,
                    "lastTransitionTime": "2026-11-30T08:05:00Z",
                }
                for t, reason, msg in conditions
            ],
            **counts,
        },
    }


def pod(
    name: str,
    created: str = START,
    *,
    terminated: dict[str, Any] | None = None,
    waiting: dict[str, Any] | None = None,
    phase: str = "Running",
) -> dict[str, Any]:
    state: dict[str, Any] = {}
    if terminated is not None:
        state["terminated"] = terminated
    if waiting is not None:
        state["waiting"] = waiting
    if not state:
        state["running"] = {}
    return {
        "metadata": {"name": name, "creationTimestamp": created},
        "status": {"phase": phase, "containerStatuses": [{"name": "runner", "state": state}]},
    }


RESULT_OK = {"success": True, "durationMs": 1234, "rowsInserted": 1000, "recordsReported": 1000}
RESULT_FAIL = {"success": False, "durationMs": 50, "error": "HTTP 500 from source"}


def d(**kw: Any):
    kw.setdefault("run_status", {"startTime": START})
    kw.setdefault("cancel_requested", False)
    kw.setdefault("pods", [])
    return derive(now=NOW, **kw)


def test_running_waiting_for_pod() -> None:
    obs = d(job=job(active=1))
    assert obs.phase is RunPhase.RUNNING and not obs.terminal
    assert obs.attempts == 1


def test_running_with_pod_counts_attempts() -> None:
    pods = [
        pod("a", terminated={"exitCode": 1, "reason": "Error"}),
        pod("b", "2026-11-30T08:01:00Z"),
    ]
    obs = d(job=job(active=1, failed=1), pods=pods)
    assert obs.phase is RunPhase.RUNNING and obs.attempts == 2
    assert "attempt 2" in obs.message


def test_image_pull_problem_surfaces_in_message_but_stays_running() -> None:
    pods = [
        pod(
            "a", waiting={"reason": "ImagePullBackOff", "message": "no such image"}, phase="Pending"
        )
    ]
    obs = d(job=job(active=1), pods=pods)
    assert obs.phase is RunPhase.RUNNING and "ImagePullBackOff" in obs.message


def test_succeeded_prefers_status_result() -> None:
    obs = d(
        job=job(("Complete", "", ""), succeeded=1),
        pods=[
            pod(
                "a",
                terminated={
                    "exitCode": 0,
                    "reason": "Completed",
                    "message": json.dumps({"success": True, "rowsInserted": 1}),
                },
            )
        ],
        run_status={"startTime": START, "result": RESULT_OK},
    )
    assert obs.phase is RunPhase.SUCCEEDED and obs.result == RESULT_OK
    assert obs.attempts == 1


def test_succeeded_from_termination_message() -> None:
    msg = json.dumps(RESULT_OK)
    obs = d(
        job=job(("Complete", "", ""), succeeded=1),
        pods=[pod("a", terminated={"exitCode": 0, "reason": "Completed", "message": msg})],
    )
    assert obs.phase is RunPhase.SUCCEEDED and obs.result["rowsInserted"] == 1000


def test_succeeded_without_any_result_has_duration_from_job() -> None:
    j = job(("Complete", "", ""), succeeded=1)
    j["status"]["completionTime"] = "2026-11-30T08:00:05Z"
    obs = d(job=j)
    assert obs.result == {"success": True, "durationMs": 5000}
    assert obs.completion_time == "2026-11-30T08:00:05Z"


def test_failed_after_retries_keeps_runner_error_and_attempts() -> None:
    msg = json.dumps(RESULT_FAIL)
    pods = [
        pod("a", terminated={"exitCode": 1, "reason": "Error", "message": msg}),
        pod(
            "b",
            "2026-11-30T08:01:00Z",
            terminated={"exitCode": 1, "reason": "Error", "message": msg},
        ),
        pod(
            "c",
            "2026-11-30T08:02:00Z",
            terminated={"exitCode": 1, "reason": "Error", "message": msg},
        ),
    ]
    obs = d(
        job=job(
            ("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit"),
            failed=3,
        ),
        pods=pods,
    )
    assert obs.phase is RunPhase.FAILED and obs.attempts == 3
    assert obs.result["success"] is False and obs.result["error"] == "HTTP 500 from source"
    assert obs.message.startswith("BackoffLimitExceeded")


def test_deadline_exceeded_is_an_infra_error() -> None:
    obs = d(
        job=job(
            ("Failed", "DeadlineExceeded", "Job was active longer than specified deadline"),
            failed=1,
        ),
        pods=[
            pod(
                "a",
                waiting={"reason": "ImagePullBackOff", "message": "pull failed"},
                phase="Pending",
            )
        ],
    )
    assert obs.phase is RunPhase.FAILED
    assert obs.result["error"].startswith("DeadlineExceeded")
    assert "ImagePullBackOff" in obs.result["error"]


def test_oom_killed() -> None:
    pods = [pod("a", terminated={"exitCode": 137, "reason": "OOMKilled"})]
    obs = d(job=job(("Failed", "BackoffLimitExceeded", "limit"), failed=1), pods=pods)
    assert "OOMKilled" in obs.result["error"]


def test_non_json_termination_message_becomes_error_text() -> None:
    pods = [pod("a", terminated={"exitCode": 3, "reason": "Error", "message": "Traceback: boom"})]
    obs = d(job=job(("Failed", "BackoffLimitExceeded", "limit"), failed=1), pods=pods)
    assert "Traceback: boom" in obs.result["error"]


def test_job_gone_without_cancel_is_failed_job_deleted() -> None:
    obs = d(job=None)
    assert obs.phase is RunPhase.FAILED
    assert obs.message.startswith("JobDeleted") and obs.result["error"].startswith("JobDeleted")


def test_job_gone_with_cancel_is_cancelled() -> None:
    obs = d(job=None, cancel_requested=True)
    assert obs.phase is RunPhase.CANCELLED and obs.result["success"] is False


def test_job_gone_but_runner_had_reported() -> None:
    obs = d(job=None, run_status={"startTime": START, "result": RESULT_OK})
    assert obs.phase is RunPhase.SUCCEEDED and obs.result == RESULT_OK


def test_cancel_requested_while_job_still_exists_stays_running() -> None:
    obs = d(job=job(active=1), cancel_requested=True)
    assert obs.phase is RunPhase.RUNNING and "cancel" in obs.message


def test_attempts_never_go_down() -> None:
    obs = d(job=None, run_status={"startTime": START, "attempts": 4})
    assert obs.attempts == 4


def test_count_attempts_uses_the_larger() -> None:
    assert count_attempts(job(failed=2, active=1), []) == 3
    assert count_attempts(None, [pod("a"), pod("b")]) == 2


def test_parse_termination_message() -> None:
    assert parse_termination_message('{"success": true}') == {"success": True}
    assert parse_termination_message("not json") is None
    assert parse_termination_message('{"x": 1}') is None
    assert parse_termination_message(None) is None


def test_pod_problem_kinds() -> None:
    assert pod_problem(pod("a")) is None
    assert pod_problem(pod("a", terminated={"exitCode": 0, "reason": "Completed"})) is None
    assert pod_problem(pod("a", waiting={"reason": "ContainerCreating"})) is None
    assert "ErrImagePull" in pod_problem(
        pod("a", waiting={"reason": "ErrImagePull", "message": "x"})
    )


def test_succeeded_ignores_a_failed_attempts_stale_result() -> None:
    ok = json.dumps(RESULT_OK)
    pods = [
        pod("a", terminated={"exitCode": 1, "reason": "Error", "message": json.dumps(RESULT_FAIL)}),
        pod(
            "b",
            "2026-11-30T08:01:00Z",
            terminated={"exitCode": 0, "reason": "Completed", "message": ok},
        ),
    ]
    obs = d(
        job=job(("Complete", "", ""), succeeded=1, failed=1),
        pods=pods,
        run_status={"startTime": START, "result": RESULT_FAIL},
    )
    assert obs.phase is RunPhase.SUCCEEDED and obs.result == RESULT_OK and obs.attempts == 2
    obs = d(
        job=job(("Complete", "", ""), succeeded=1),
        run_status={"startTime": START, "result": RESULT_FAIL},
    )
    assert obs.result["success"] is True and not obs.result.get("error")
