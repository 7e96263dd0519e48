"""Settings: the operator's one settings object, from the environment (config.py)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from datapipelines.operator import config
from datapipelines.operator.config import Settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No DATAPIPELINES_* or pod variables from the outer environment."""
    import os

    for name in list(os.environ):
        if name.startswith("DATAPIPELINES_") or name in ("POD_NAMESPACE", "POD_NAME"):
            monkeypatch.delenv(name)
    monkeypatch.setattr(config, "SERVICE_ACCOUNT_DIR", "/nonexistent")
    return monkeypatch


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, ["from-pod"]),  # unset: the operator's own namespace
        ("", []),  # all namespaces
        ("*", []),
        (" * ", []),
        ("a", ["a"]),
        ("a,b", ["a", "b"]),
        (" a , b ,", ["a", "b"]),
    ],
)
def test_watched_namespaces(
    clean_env: pytest.MonkeyPatch, value: str | None, expected: list[str]
) -> None:
    clean_env.setenv("POD_NAMESPACE", "from-pod")
    if value is not None:
        clean_env.setenv("DATAPIPELINES_NAMESPACE", value)
    assert Settings().watched_namespaces() == expected


def test_own_namespace_falls_back_to_the_service_account_then_default(
    clean_env: pytest.MonkeyPatch, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    assert Settings().watched_namespaces() == ["default"]
    (tmp_path / "namespace").write_text("from-sa\n")
    clean_env.setattr(config, "SERVICE_ACCOUNT_DIR", str(tmp_path))
    assert Settings().watched_namespaces() == ["from-sa"]


def test_lease_for_shard() -> None:
    assert Settings(lease_name="op").lease_for_shard() == "op"
    a = Settings(lease_name="op", shard_selector="team=a").lease_for_shard()
    b = Settings(lease_name="op", shard_selector="team=b").lease_for_shard()
    assert a.startswith("op-") and len(a) == len("op-") + 8
    assert a != b and a == Settings(lease_name="op", shard_selector="team=a").lease_for_shard()


def test_lease_home(clean_env: pytest.MonkeyPatch) -> None:
    assert Settings(lease_namespace="ops").lease_home() == "ops"
    assert Settings(namespace="a,b").lease_home() == "a"
    clean_env.setenv("POD_NAMESPACE", "pod-ns")
    assert Settings(namespace="a,b").lease_home() == "pod-ns"


@pytest.mark.parametrize(
    ("runner_image", "repo"),
    [
        ("localhost/datapipelines-runner:dev", "localhost/datapipelines-runner"),
        ("reg.example:5000/runner", "reg.example:5000/runner"),
        ("reg.example:5000/runner:1.2", "reg.example:5000/runner"),
        ("reg.example/runner:1@sha256:" + "b" * 64, "reg.example/runner"),
        ("reg.example/runner@sha256:" + "b" * 64, "reg.example/runner"),
    ],
)
def test_allowed_images_include_the_runner_repository(runner_image: str, repo: str) -> None:
    s = Settings(runner_image=runner_image, sandbox_images=["x/one", repo, "x/two"])
    assert s.allowed_images() == ["x/one", repo, "x/two"]  # deduplicated, in order
    assert Settings(runner_image=runner_image).allowed_images() == [repo]


def test_comma_lists_in_python() -> None:
    s = Settings(sandbox_images="a/b, c/d", sandbox_denied_secrets="s1,,s2")  # type: ignore[arg-type]
    assert s.sandbox_images == ["a/b", "c/d"] and s.sandbox_denied_secrets == ["s1", "s2"]


def test_json_settings_from_the_environment(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("DATAPIPELINES_RUNNER_NODE_SELECTOR", '{"pool": "etl"}')
    clean_env.setenv("DATAPIPELINES_RUNNER_TOLERATIONS", '[{"key": "k", "operator": "Exists"}]')
    clean_env.setenv("DATAPIPELINES_RUNNER_HOST_NETWORK", "true")
    clean_env.setenv("DATAPIPELINES_JOB_TTL_SECONDS", "60")
    s = Settings()
    assert s.runner_node_selector == {"pool": "etl"}
    assert s.runner_tolerations == [{"key": "k", "operator": "Exists"}]
    assert s.runner_host_network is True and s.job_ttl_seconds == 60


@pytest.mark.parametrize(
    "variable",
    [
        "DATAPIPELINES_SANDBOX_IMAGES",
        "DATAPIPELINES_SANDBOX_VOLUME_TYPES",
        "DATAPIPELINES_SANDBOX_ENV_SECRETS",
        "DATAPIPELINES_SANDBOX_DENIED_SECRETS",
    ],
)
def test_comma_lists_from_the_environment(clean_env: pytest.MonkeyPatch, variable: str) -> None:
    clean_env.setenv(variable, "one, two")
    s = Settings()
    field = variable.removeprefix("DATAPIPELINES_").lower()
    assert getattr(s, field) == ["one", "two"]


@pytest.mark.parametrize(
    ("retry", "renew", "duration"),
    [(2, 10, 10), (10, 10, 15), (12, 10, 15), (2, 16, 15), (5, 4, 15)],
)
def test_lease_timings_must_leave_the_holder_time_to_stop(
    retry: float, renew: float, duration: float
) -> None:
    with pytest.raises(ValidationError, match="retryPeriod < renewDeadline < leaseDuration"):
        Settings(
            retry_period_seconds=retry,
            renew_deadline_seconds=renew,
            lease_duration_seconds=duration,
        )


def test_lease_timings_defaults_and_request_timeout() -> None:
    s = Settings()
    assert (s.retry_period_seconds, s.renew_deadline_seconds, s.lease_duration_seconds) == (
        2,
        10,
        15,
    )
    # a request may not outlive the Lease: cut to half the renew deadline
    s = Settings(
        lease_duration_seconds=6,
        renew_deadline_seconds=4,
        retry_period_seconds=1,
        request_timeout_seconds=10,
    )
    assert s.request_timeout_seconds == 2


def test_identity(clean_env: pytest.MonkeyPatch) -> None:
    first = Settings.identity()
    assert first == Settings.identity() and first.count("-") >= 2
    clean_env.setenv("POD_NAME", "operator-0")
    assert Settings.identity() == "operator-0"
