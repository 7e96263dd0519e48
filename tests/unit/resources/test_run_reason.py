"""status.reason of an ended run: one specific CamelCase word (resources/run.py end_reason)."""

from __future__ import annotations

import pytest

from datapipelines.resources.run import RunPhase, end_reason

FAILED = RunPhase.FAILED


@pytest.mark.parametrize(
    ("message", "error", "reason"),
    [
        (
            "BackoffLimitExceeded: Job has reached the specified backoff limit; runner: "
            "bad credentials: source rejected the login: 401",
            "bad credentials: source rejected the login: 401",
            "BadCredentials",
        ),
        (
            "BackoffLimitExceeded: Job has reached the specified backoff limit",
            "source HTTP 404: Not Found for GET http://127.0.0.1/x (unknown resource)",
            "SourceHTTPError",
        ),
        (
            "BackoffLimitExceeded: Job has reached the specified backoff limit (OOMKilled: the "
            "runner exceeded its memory limit (exit code 137))",
            None,
            "OOMKilled",
        ),
        (
            "DeadlineExceeded: Job was active longer than specified deadline",
            None,
            "DeadlineExceeded",
        ),
        (
            "PodNotStarted: the runner's pod did not start within 60 s (startTimeoutSeconds): "
            "ErrImagePull: pull access denied",
            None,
            "ImagePullBackOff",
        ),
        (
            "PodNotStarted: the runner's pod did not start within 60 s (startTimeoutSeconds): "
            'FailedMount: MountVolume.SetUp failed for volume "secret-0" : secret "nope" not found',
            None,
            "SecretNotFound",
        ),
        (
            "PodNotStarted: the runner's pod did not start: the pod is Pending",
            None,
            "PodNotStarted",
        ),
        ("JobDeleted: the Job was deleted before ...", None, "JobDeleted"),
        ("contract violation: items.extra: column not allowed", None, "ContractViolation"),
        ("something odd", None, "Failed"),
    ],
)
def test_failure_reasons(message: str, error: str | None, reason: str) -> None:
    assert end_reason(FAILED, message, error) == reason


def test_other_phases() -> None:
    assert end_reason(RunPhase.SUCCEEDED, "the runner finished successfully") == "Completed"
    assert end_reason(RunPhase.CANCELLED, "the run was cancelled") == "Cancelled"
    assert end_reason(RunPhase.RUNNING, "attempt 1") is None
