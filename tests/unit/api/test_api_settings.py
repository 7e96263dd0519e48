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
    assert s.api_port == 9000 and s.watched_namespaces() == ["pipelines"]
    assert s.history_dsn is not None and "p@" not in repr(s)  # secrets stay hidden
    assert "k1-aaaaaaaa" not in repr(s)
    assert s.kubeconfig == "/tmp/kc"
    monkeypatch.setenv("DATAPIPELINES_KUBECONFIG", "/tmp/dp-kc")
    assert Settings().kubeconfig == "/tmp/dp-kc"


def test_namespace_from_service_account(tmp_path: Path) -> None:
    sa = tmp_path / "namespace"
    sa.write_text("team-a\n")
    # not set: the pod's own namespace, else `default`
    assert Settings(namespace=None).watched_namespaces(sa) == ["team-a"]
    assert Settings(namespace=None).watched_namespaces(tmp_path / "missing") == ["default"]
    assert Settings(namespace="explicit").watched_namespaces(sa) == ["explicit"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [("", []), ("*", []), (" * ", []), ("b, a ,,a", ["a", "b"]), ("one", ["one"])],
)
def test_watched_namespaces(tmp_path: Path, value: str, expected: list[str]) -> None:
    """Empty or `*`: every namespace ([]); a comma list: those."""
    assert Settings(namespace=value).watched_namespaces(tmp_path / "sa") == expected


def test_namespace_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("DATAPIPELINES_NAMESPACE", raising=False)
    assert Settings().watched_namespaces(tmp_path / "missing") == ["default"]
    monkeypatch.setenv("DATAPIPELINES_NAMESPACE", "")  # the chart's watchNamespace: ""
    assert Settings().watched_namespaces(tmp_path / "missing") == []
    monkeypatch.setenv("DATAPIPELINES_NAMESPACE", "team-a,team-b")
    assert Settings().watched_namespaces(tmp_path / "missing") == ["team-a", "team-b"]
