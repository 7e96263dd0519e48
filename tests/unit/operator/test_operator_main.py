"""main.py only registers handlers; none of them makes kopf put a finalizer on our objects."""

from __future__ import annotations

import kopf

import datapipelines.operator.main as main
from datapipelines.operator.config import FINALIZER, KOPF_PREFIX, Settings


def test_handlers_registered_without_finalizers() -> None:
    registry = kopf.get_default_registry()
    assert main  # imported for its decorators
    # Timers and daemons (spawning handlers) would put a finalizer on every object.
    assert not registry._spawning.get_all_handlers()
    changing = registry._changing.get_all_handlers()
    assert changing and not any(h.requires_finalizer for h in changing)
    ids = {str(h.id) for h in changing} | {str(h.id) for h in registry._watching.get_all_handlers()}
    for expected in ("run-start", "run-cancel", "run-deleted", "connection", "batch"):
        assert any(i.startswith(expected) for i in ids), (expected, ids)


def test_kopf_bookkeeping_under_our_prefix() -> None:
    settings = kopf.OperatorSettings()
    main.configure(settings=settings)
    assert settings.persistence.finalizer == FINALIZER
    assert FINALIZER.startswith(KOPF_PREFIX)
    assert isinstance(settings.persistence.progress_storage, kopf.AnnotationsProgressStorage)
    assert settings.persistence.progress_storage.prefix == KOPF_PREFIX
    assert settings.persistence.diffbase_storage.prefix == KOPF_PREFIX


def test_settings_from_environment(monkeypatch) -> None:
    monkeypatch.setenv("DATAPIPELINES_NAMESPACE", "")
    monkeypatch.setenv("POD_NAMESPACE", "from-pod")
    monkeypatch.setenv("DATAPIPELINES_RUNNER_HOST_NETWORK", "true")
    monkeypatch.setenv("DATAPIPELINES_JOB_TTL_SECONDS", "60")
    s = Settings()
    assert s.watched_namespace() == "from-pod"
    assert s.runner_host_network is True and s.job_ttl_seconds == 60
    monkeypatch.setenv("DATAPIPELINES_NAMESPACE", "explicit")
    assert Settings().watched_namespace() == "explicit"
    monkeypatch.setenv("POD_NAME", "op-0")
    assert Settings.identity() == "op-0"


def test_login_reads_the_kubeconfig_named_at_run_time(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # kubernetes_asyncio reads KUBECONFIG at import; ours must honour the one main() sets later.
    config = tmp_path / "kubeconfig"
    config.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: k, cluster: {server: 'https://127.0.0.1:6443'}}]\n"
        "users: [{name: u, user: {token: t0ken}}]\n"
        "contexts: [{name: c, context: {cluster: k, user: u, namespace: ns}}]\n"
    )
    monkeypatch.setenv("KUBECONFIG", str(config))
    info = main.login(settings=kopf.OperatorSettings(), logger=None)
    assert info is not None
    assert info.server == "https://127.0.0.1:6443"
    assert info.token == "t0ken"


def test_in_cluster_login_uses_the_announced_apiserver(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "6443")
    assert main.in_cluster_server() == "https://127.0.0.1:6443"
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "fd00::1")
    assert main.in_cluster_server() == "https://[fd00::1]:6443"
