"""Secret files and redaction: values are read from files and never leave the process."""

from __future__ import annotations

from pathlib import Path

import pytest

from datapipelines.resources.meta import SecretRef
from datapipelines.runner import secrets
from datapipelines.runner.errors import ConfigError


@pytest.fixture(autouse=True)
def _clean():
    yield
    secrets.set_secrets_dir(None)
    secrets.forget_all()


def test_path_for_uses_env_then_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ref = SecretRef(name="warehouse", key="password")
    monkeypatch.delenv("DATAPIPELINES_SECRETS_DIR", raising=False)
    assert secrets.path_for(ref) == Path("/var/run/datapipelines/secrets/warehouse/password")
    monkeypatch.setenv("DATAPIPELINES_SECRETS_DIR", "/mnt/s")
    assert secrets.path_for(ref) == Path("/mnt/s/warehouse/password")
    secrets.set_secrets_dir(tmp_path)
    assert secrets.path_for(ref) == tmp_path / "warehouse" / "password"


def test_read_strips_newline_and_redacts(tmp_path: Path) -> None:
    (tmp_path / "db").mkdir()
    (tmp_path / "db" / "url").write_text("postgresql://u:p%40ss w0rd@h/db\n")
    secrets.set_secrets_dir(tmp_path)
    value = secrets.read(SecretRef(name="db", key="url"))
    assert value == "postgresql://u:p%40ss w0rd@h/db"
    assert secrets.redact(f"failed: {value}!") == "failed: ***!"


def test_missing_or_empty_secret_is_bad_config(tmp_path: Path) -> None:
    secrets.set_secrets_dir(tmp_path)
    with pytest.raises(ConfigError, match="secret a/b not found"):
        secrets.read(SecretRef(name="a", key="b"))
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "b").write_text("\n")
    with pytest.raises(ConfigError, match="is empty"):
        secrets.read(SecretRef(name="a", key="b"))


@pytest.mark.parametrize(("name", "key"), [("..", "x"), ("a", "../b"), ("a/b", "c")])
def test_refs_cannot_escape_the_secrets_dir(name: str, key: str) -> None:
    with pytest.raises(ConfigError, match="invalid secret reference"):
        secrets.path_for(SecretRef.model_construct(name=name, key=key))


def test_redact_blanks_url_quoted_forms() -> None:
    secrets.remember("p@ss/word")
    assert secrets.redact("postgresql://u:p%40ss%2Fword@h") == "postgresql://u:***@h"
