"""The thin apiserver client's configuration (kubeconfig, in-cluster) and its paths; requests
themselves are exercised against the real apiserver by the integration tests."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import yaml

from datapipelines.api.apiserver import (
    ApiServerError,
    ConfigurationError,
    core_path,
    custom_path,
    in_cluster_config,
    kubeconfig_config,
)


def write_kubeconfig(path: Path, user: dict, cluster: dict | None = None) -> Path:
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "main",
        "contexts": [
            {"name": "main", "context": {"cluster": "c", "user": "u"}},
            {"name": "other", "context": {"cluster": "c2", "user": "u"}},
        ],
        "clusters": [
            {"name": "c", "cluster": cluster or {"server": "https://127.0.0.1:6443/"}},
            {"name": "c2", "cluster": {"server": "http://127.0.0.1:8080"}},
        ],
        "users": [{"name": "u", "user": user}],
    }
    path.write_text(yaml.safe_dump(doc))
    return path


def test_kubeconfig_files_relative_to_the_kubeconfig(tmp_path: Path) -> None:
    path = write_kubeconfig(
        tmp_path / "kubeconfig",
        {"client-certificate": "pki/admin.crt", "client-key": "/abs/admin.key"},
        {"server": "https://127.0.0.1:6443/", "certificate-authority": "pki/ca.crt"},
    )
    config = kubeconfig_config(path)
    assert config.server == "https://127.0.0.1:6443"
    assert config.ca_file == str(tmp_path / "pki" / "ca.crt")
    assert config.cert_file == str(tmp_path / "pki" / "admin.crt")
    assert config.key_file == "/abs/admin.key"
    assert config.bearer() is None
    assert kubeconfig_config(path, context="other").server == "http://127.0.0.1:8080"


def test_kubeconfig_inline_data_and_tokens(tmp_path: Path) -> None:
    ca = base64.b64encode(b"CA PEM").decode()
    path = write_kubeconfig(
        tmp_path / "kubeconfig",
        {"token": "tok-1"},
        {"server": "https://127.0.0.1:6443", "certificate-authority-data": ca},
    )
    config = kubeconfig_config(path)
    assert config.ca_file is not None and Path(config.ca_file).read_bytes() == b"CA PEM"
    assert oct(Path(config.ca_file).stat().st_mode & 0o777) == "0o600"
    assert config.bearer() == "tok-1"
    (tmp_path / "token").write_text("tok-2\n")
    path = write_kubeconfig(tmp_path / "kubeconfig", {"tokenFile": "token"})
    assert kubeconfig_config(path).bearer() == "tok-2"


@pytest.mark.parametrize(
    ("user", "message"),
    [
        ({"exec": {"command": "aws"}}, "`exec` credentials are not supported"),
        ({"auth-provider": {"name": "gcp"}}, "`auth-provider` credentials are not supported"),
    ],
)
def test_kubeconfig_plugins_are_refused_by_name(tmp_path: Path, user: dict, message: str) -> None:
    path = write_kubeconfig(tmp_path / "kubeconfig", user)
    with pytest.raises(ConfigurationError, match=message):
        kubeconfig_config(path)


def test_kubeconfig_problems_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read kubeconfig"):
        kubeconfig_config(tmp_path / "missing")
    path = write_kubeconfig(tmp_path / "kubeconfig", {})
    with pytest.raises(ConfigurationError, match="no context named 'nope'"):
        kubeconfig_config(path, context="nope")


def test_in_cluster(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="not in a cluster"):
        in_cluster_config({}, str(tmp_path))
    env = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": "6443"}
    with pytest.raises(ConfigurationError, match="no service account token"):
        in_cluster_config(env, str(tmp_path))
    (tmp_path / "token").write_text("sa-token")
    (tmp_path / "ca.crt").write_text("CA")
    config = in_cluster_config(env, str(tmp_path))
    assert config.server == "https://127.0.0.1:6443"
    assert config.ca_file == str(tmp_path / "ca.crt")
    assert config.bearer() == "sa-token"


def test_paths() -> None:
    assert custom_path("g.io", "v1", "things") == "/apis/g.io/v1/things"
    assert custom_path("g.io", "v1", "things", "ns", "a") == "/apis/g.io/v1/namespaces/ns/things/a"
    assert core_path("v1", "pods", "ns", "p", sub="log") == "/api/v1/namespaces/ns/pods/p/log"
    assert core_path("batch/v1", "jobs", "ns", "j") == "/apis/batch/v1/namespaces/ns/jobs/j"


def test_errors_carry_the_status_message() -> None:
    exc = ApiServerError(422, "Unprocessable", '{"kind": "Status", "message": "spec.x: bad"}')
    assert (exc.status, exc.message) == (422, "spec.x: bad")
    assert ApiServerError(502, "Bad Gateway", "<html>").message == "Bad Gateway"
