"""status.py: a started run's Job + pods (+ the runner's report) → its observed state. Pure."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datapipelines.operator import views
from datapipelines.operator.status import (
    Observed,
    count_attempts,
    derive,
    job_failure,
    parse_termination_message,
    pod_problem,
    runner_result,
    started,
)
from datapipelines.resources.run import ResultSource, RunPhase
from tests.unit.operator.opkit import (
    NOW,
    at,
    job,
    pod,
    pod_body,
    run,
    run_body,
    running_status,
)


def observe(
    *,
    status: dict[str, Any] | None = None,
    job_kw: dict[str, Any] | None = None,
    no_job: bool = False,
    pods: list[dict[str, Any]] = (),  # type: ignore[assignment]
    cancel: bool = False,
    timeout: int = 300,
    now_offset: float = 0,
) -> Observed:
    st = running_status()
    st.update(status or {})
    return derive(
        run=run(status=st, created=-100),
        job=None if no_job else job(**(job_kw or {"active": 1})),
        pods=[pod(**{"name": f"p{i}", "created": -45 + i, **kw}) for i, kw in enumerate(pods)],
        cancel_requested=cancel,
        start_timeout_seconds=timeout,
        now=at(now_offset),
    )


# --------------------------------------------------------------------------- termination message


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ('{"success": true, "rowsInserted": 3}', {"success": True, "rows_inserted": 3}),
        ('{"success": false, "error": "boom"}', {"success": False, "error": "boom"}),
        ('{"success": true, "unknownKey": 1}', {"success": True}),
        ("", None),
        (None, None),
        ("Traceback (most recent call last): ...", None),
        ("[1, 2]", None),
        ('{"rowsInserted": 3}', None),
        ('{"success": "true"}', None),
        ('{"success": true, "rowsInserted": "many"}', None),
        ('{"success": true', None),
        ("[" * 2000, None),
        ('{"a":' * 5000 + "1" + "}" * 5000, None),
        ('{"success": true, "error": "' + "x" * 70000 + '"}', None),
    ],
)
def test_parse_termination_message(message: str | None, expected: dict[str, Any] | None) -> None:
    parsed = parse_termination_message(message)
    if expected is None:
        assert parsed is None
    else:
        assert parsed is not None
        assert {k: getattr(parsed, k) for k in expected} == expected


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet='[]{}":,0123456789tfrue \\x', max_size=4096))
def test_no_termination_message_makes_the_parser_raise(message: str) -> None:
    parse_termination_message(message)  # None or a result, never an exception


def test_a_crafted_termination_message_fails_its_run_with_the_reason_not_the_reconcile() -> None:
    obs = observe(
        job_kw={"failed": ("BackoffLimitExceeded", "Job has reached the backoff limit")},
        pods=[{"phase": "Failed", "terminated": {"exitCode": 1, "message": "[" * 2000}}],
    )
    assert obs.phase is RunPhase.FAILED
    assert obs.result is not None and "BackoffLimitExceeded" in (obs.result.error or "")


def test_a_runner_result_that_is_not_a_report_fails_the_run_and_stops_its_job() -> None:
    body = run_body(status={**running_status(), "runnerResult": {"success": "maybe"}})
    forged = views.run_view(body)
    assert forged is not None and forged.runner_report_problem is not None
    obs = derive(
        run=forged,
        job=job(active=1),
        pods=[],
        cancel_requested=False,
        start_timeout_seconds=300,
        now=NOW,
    )
    assert obs.phase is RunPhase.FAILED and obs.delete_job
    assert obs.message.startswith("InvalidRunnerReport: status.runnerResult is not a runner report")


# --------------------------------------------------------------------------- pod problems


@pytest.mark.parametrize(
    ("kw", "problem"),
    [
        (
            {"waiting": ("ImagePullBackOff", "Back-off pulling image x")},
            "ImagePullBackOff: Back-off pulling image x",
        ),
        ({"waiting": ("ErrImagePull", "")}, "ErrImagePull: container cannot start"),
        (
            {"waiting": ("CreateContainerConfigError", 'secret "s" not found')},
            'CreateContainerConfigError: secret "s" not found',
        ),
        ({"waiting": ("ContainerCreating", "")}, None),
        (
            {"terminated": {"exitCode": 137, "reason": "OOMKilled"}},
            "OOMKilled: the runner exceeded its memory limit (exit code 137)",
        ),
        (
            {"terminated": {"exitCode": 128, "reason": "ContainerCannotRun"}},
            "ContainerCannotRun: runner terminated with exit code 128",
        ),
        (
            {"terminated": {"exitCode": 1, "reason": "Error", "message": "boom\n"}},
            "ExitCode1: runner exited with code 1: boom",
        ),
        (
            {"terminated": {"exitCode": 2, "reason": "Error"}},
            "ExitCode2: runner exited with code 2",
        ),
        (
            {
                "terminated": {
                    "exitCode": 1,
                    "reason": "Error",
                    "message": '{"success": false, "error": "x"}',
                }
            },
            None,
        ),
        ({"terminated": {"exitCode": 0, "reason": "Completed"}}, None),
        (
            {"phase": "Failed", "reason": "Evicted", "message": "low on memory"},
            "Evicted: low on memory",
        ),
        ({"unschedulable": "0/1 nodes are available"}, "Unschedulable: 0/1 nodes are available"),
        ({"phase": "Running", "running": True}, None),
    ],
)
def test_pod_problem(kw: dict[str, Any], problem: str | None) -> None:
    assert pod_problem(pod(**kw)) == problem


def test_the_runner_container_is_read_even_with_a_sidecar() -> None:
    body = pod_body(waiting=("ImagePullBackOff", "x"))
    sidecar = {"name": "istio-proxy", "state": {"running": {}}}
    body["status"]["containerStatuses"].insert(0, sidecar)
    assert pod_problem(views.pod_view(body)) == "ImagePullBackOff: x"


def test_a_restarted_container_keeps_its_last_termination() -> None:
    body = pod_body()
    body["status"]["containerStatuses"] = [
        {
            "name": "runner",
            "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}},
        }
    ]
    view = views.pod_view(body)
    assert view.container.terminated and view.container.exit_code == 137
    assert pod_problem(view) == "OOMKilled: the runner exceeded its memory limit (exit code 137)"


def test_started_and_attempts() -> None:
    assert started(pod(phase="Running", running=True))
    assert started(pod(phase="Failed", terminated={"exitCode": 1}))
    assert not started(pod(waiting=("ImagePullBackOff", "")))
    assert count_attempts(None, []) == 0
    assert count_attempts(job(failed_pods=2, active=1), []) == 3
    assert count_attempts(job(active=1), [pod(name="a"), pod(name="b")]) == 2


def test_job_failure_text() -> None:
    assert job_failure(job(failed=("DeadlineExceeded", "Job was active longer"))) == (
        "DeadlineExceeded: Job was active longer"
    )
    assert job_failure(job(failed=("", ""))) == "JobFailed: the Job failed"


# --------------------------------------------------------------------------- derive


def test_complete_job_succeeds_with_the_newest_pod_result() -> None:
    obs = observe(
        job_kw={"complete": True, "succeeded": 1, "failed_pods": 1, "finished": -5},
        pods=[
            {"phase": "Failed", "terminated": {"exitCode": 1, "message": '{"success": false}'}},
            {
                "phase": "Succeeded",
                "terminated": {"exitCode": 0, "message": '{"success": true, "rowsInserted": 4}'},
            },
        ],
    )
    assert obs.phase is RunPhase.SUCCEEDED and obs.terminal
    assert obs.attempts == 2
    assert obs.completion_time == at(-5) and obs.start_time == at(-50)
    assert obs.result is not None and obs.result.success and obs.result.rows_inserted == 4
    assert obs.result.source is ResultSource.TERMINATION_MESSAGE
    assert obs.result.duration_ms == 45000  # no duration in the message: start → end
    assert not obs.delete_job


def test_runner_result_keeps_no_second_copy_of_the_report() -> None:
    report = {"success": True, "rowsInserted": 2, "report": "long text", "podName": "p"}
    obs = observe(status={"runnerResult": report}, job_kw={"complete": True, "succeeded": 1})
    assert obs.result is not None and obs.result.source is ResultSource.RUNNER
    assert obs.result.report is None  # the operator's views drop it; it stays in runnerResult


def test_runner_result_precedence_and_contradictions() -> None:
    r = run(status=running_status(runnerResult={"success": False, "error": "first"}))
    pods = [pod(name="p0", terminated={"exitCode": 0, "message": '{"success": true}'})]
    found, source = runner_result(r, pods)
    assert found is not None and found.error == "first" and source is ResultSource.RUNNER
    found, source = runner_result(r, pods, succeeded=True)
    assert found is not None and found.success and source is ResultSource.TERMINATION_MESSAGE
    assert runner_result(r, [], succeeded=True) == (None, None)


@pytest.mark.parametrize(
    ("job_kw", "pods", "error"),
    [
        (
            {"failed": ("BackoffLimitExceeded", "backoff limit reached"), "failed_pods": 3},
            [{"phase": "Failed", "terminated": {"exitCode": 137, "reason": "OOMKilled"}}],
            "BackoffLimitExceeded: backoff limit reached (OOMKilled: the runner exceeded its "
            "memory limit (exit code 137))",
        ),
        (
            {"failed": ("DeadlineExceeded", "Job was active longer than specified deadline")},
            [],
            "DeadlineExceeded: Job was active longer than specified deadline",
        ),
        (
            {"failed": ("PodFailurePolicy", "Container runner exited with 2")},
            [
                {
                    "phase": "Failed",
                    "terminated": {"exitCode": 2, "reason": "Error", "message": "bad config: x"},
                }
            ],
            "PodFailurePolicy: Container runner exited with 2 (ExitCode2: runner exited with "
            "code 2: bad config: x)",
        ),
    ],
)
def test_failed_job_reports_the_infrastructure_error(
    job_kw: dict[str, Any], pods: list[dict[str, Any]], error: str
) -> None:
    obs = observe(job_kw=job_kw, pods=pods)
    assert obs.phase is RunPhase.FAILED
    assert obs.result is not None and obs.result.error == error and not obs.result.success
    assert obs.result.source is ResultSource.OPERATOR
    assert obs.message == error
    assert obs.completion_time == at(-5)


def test_failed_job_with_the_runner_error() -> None:
    obs = observe(
        status={"runnerResult": {"success": False, "error": "HTTP 500 from source"}},
        job_kw={"failed": ("BackoffLimitExceeded", "limit"), "failed_pods": 3},
    )
    assert obs.result is not None and obs.result.error == "HTTP 500 from source"
    assert obs.message == "BackoffLimitExceeded: limit; runner: HTTP 500 from source"


def test_cancel_of_a_failed_job_ends_cancelled() -> None:
    obs = observe(job_kw={"failed": ("DeadlineExceeded", "x")}, cancel=True)
    assert obs.phase is RunPhase.CANCELLED


def test_cancel_while_running_asks_to_delete_the_job() -> None:
    obs = observe(pods=[{"phase": "Running", "running": True}], cancel=True)
    assert obs.phase is RunPhase.RUNNING and obs.delete_job
    assert obs.message == "cancel requested: deleting the Job"


@pytest.mark.parametrize(
    ("status", "cancel", "phase", "prefix"),
    [
        ({}, False, RunPhase.FAILED, "JobDeleted: "),
        ({}, True, RunPhase.CANCELLED, "the run was cancelled"),
        ({"runnerResult": {"success": True}}, False, RunPhase.SUCCEEDED, "the Job is gone"),
        (
            {"runnerResult": {"success": False, "error": "x"}},
            False,
            RunPhase.FAILED,
            "the Job is gone",
        ),
    ],
)
def test_job_gone(status: dict[str, Any], cancel: bool, phase: RunPhase, prefix: str) -> None:
    obs = observe(status=status, no_job=True, cancel=cancel)
    assert obs.phase is phase and obs.message.startswith(prefix)
    assert obs.completion_time == NOW
    if phase is RunPhase.FAILED and not status:
        assert obs.result is not None and obs.result.error == obs.message


def test_running_pod_message_names_the_attempt() -> None:
    obs = observe(
        job_kw={"active": 1, "failed_pods": 1},
        pods=[
            {"phase": "Failed", "terminated": {"exitCode": 1}},
            {"phase": "Running", "running": True},
        ],
    )
    assert obs.phase is RunPhase.RUNNING and obs.attempts == 2
    assert obs.message == "attempt 2"
    assert obs.recheck_at is None and not obs.delete_job


def test_the_attempts_never_go_down() -> None:
    obs = observe(status={"attempts": 4}, pods=[{"phase": "Running", "running": True}])
    assert obs.attempts == 4


def test_waiting_pod_rechecks_at_the_start_deadline_then_fails() -> None:
    waiting = [{"waiting": ("ErrImagePull", "not found")}]
    obs = observe(pods=waiting, timeout=60)
    assert obs.phase is RunPhase.RUNNING
    assert obs.message == "attempt 1: ErrImagePull: not found"
    assert obs.recheck_at == at(-45 + 60)
    obs = observe(pods=waiting, timeout=60, now_offset=15)
    assert obs.phase is RunPhase.FAILED and obs.delete_job
    assert obs.message == (
        "PodNotStarted: the runner's pod did not start within 60 s (startTimeoutSeconds): "
        "ErrImagePull: not found"
    )
    assert obs.result is not None and obs.result.error == obs.message


def test_the_start_deadline_counts_from_the_current_pod() -> None:
    # attempt 1 ran and failed; attempt 2 has been pending for 10 s only
    obs = observe(
        pods=[
            {"phase": "Failed", "terminated": {"exitCode": 1}, "created": -400},
            {"phase": "Pending", "created": -10},
        ],
        job_kw={"active": 1, "failed_pods": 1, "created": -500},
        timeout=60,
    )
    assert obs.phase is RunPhase.RUNNING and obs.recheck_at == at(50)


def test_no_pod_yet_counts_from_the_job_creation() -> None:
    obs = observe(timeout=60)  # the Job was created at -50
    assert obs.message == "attempt 1" and obs.recheck_at == at(10)
    obs = observe(timeout=60, now_offset=10)
    assert obs.phase is RunPhase.FAILED and obs.message.endswith("the pod was not created")


def test_a_crashed_runner_is_named_by_its_last_error_line() -> None:
    from datapipelines.operator.status import last_error_line

    tail = "\n".join(
        [
            '{"ts": "2026-12-08T01:00:00.000Z", "level": "info", "logger": "x", "msg": "start"}',
            '{"ts": "2026-12-08T01:00:01.000Z", "level": "error", "logger": "x", '
            '"msg": "cannot import dlt: No module named dlt"}',
            "Traceback (most recent call last):",
            "ModuleNotFoundError: No module named 'dlt'",
        ]
    )
    assert last_error_line(tail) == "cannot import dlt: No module named dlt"
    assert last_error_line("plain text\nSegmentation fault\n") == "Segmentation fault"
    assert last_error_line("") == ""
