"""Settings: env names of docs/contracts.md, namespace resolution."""

from __future__ import annotations

from pathlib import Path

import pytest

from datapipelines.api.settings import Settings


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in (
        "DATAPIPELINES_API_KEY",
        "DATAPIPELINES_API_HOST",
        "DATAPIPELINES_API_PORT",
        "DATAPIPELINES_NAMESPACE",
        "DATAPIPELINES_HISTORY_DSN",
        "KUBECONFIG",
        "DATAPIPELINES_KUBECONFIG",
    ):
        monkeypatch.delenv(var, raising=False)
    s = Settings()
    assert (s.api_host, s.api_port) == ("0.0.0.0", 8081)
    assert s.api_keys == [] and s.history_dsn is None and s.kubeconfig is None
    assert s.log_format == "json"


def test_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATAPIPELINES_API_KEY", "k1-aaaaaaaa,k2-bbbbbbbb")
    monkeypatch.setenv("DATAPIPELINES_API_PORT", "9000")
    monkeypatch.setenv("DATAPIPELINES_NAMESPACE", "pipelines")
    monkeypatch.setenv("DATAPIPELINES_HISTORY_DSN", "postgresql://u:p@127.0.0.1/db")
    monkeypatch.setenv("KUBECONFIG", "/tmp/kc")
    monkeypatch.setenv("DATAPIPELINES_API_RUN_WAIT_SECONDS", "77")
    s = Settings()
    assert s.run_wait_seconds == 77
    assert s.api_keys == ["k1-aaaaaaaa", "k2-bbbbbbbb"]
    assert s.api_port == 9000 and s.resolved_namespace() == "pipelines"
    assert s.history_dsn is not None and "p@" not in repr(s)  # secrets stay hidden
    assert "k1-aaaaaaaa" not in repr(s)
    assert s.kubeconfig == "/tmp/kc"
    monkeypatch.setenv("DATAPIPELINES_KUBECONFIG", "/tmp/dp-kc")
    assert Settings().kubeconfig == "/tmp/dp-kc"


def test_namespace_from_service_account(tmp_path: Path) -> None:
    sa = tmp_path / "namespace"
    sa.write_text("team-a\n")
    assert Settings(namespace="").resolved_namespace(sa) == "team-a"
    assert Settings(namespace="explicit").resolved_namespace(sa) == "explicit"
    assert Settings(namespace="").resolved_namespace(tmp_path / "missing") == "default"
