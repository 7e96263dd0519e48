"""Pure parts of the source builders: dlt's rest_api config, auth from secret files, URLs."""

from __future__ import annotations

from pathlib import Path

import pytest

from datapipelines.resources.connection import RestApiSource
from datapipelines.runner import secrets
from datapipelines.runner.restconfig import rest_api_config
from datapipelines.runner.sources import bucket_url, sqlalchemy_url


@pytest.fixture
def secret_files(tmp_path: Path):
    for name, key, value in [
        ("api", "token", "tok-123"),
        ("api", "user", "bob"),
        ("api", "pass", "pw-456"),
    ]:
        (tmp_path / name).mkdir(exist_ok=True)
        (tmp_path / name / key).write_text(value + "\n")
    secrets.set_secrets_dir(tmp_path)
    yield
    secrets.set_secrets_dir(None)
    secrets.forget_all()


def source(auth: dict | None = None, **kw: object) -> RestApiSource:
    data = {"baseUrl": "https://api.example.com/v1/", "resources": ["users"], **kw}
    if auth:
        data["auth"] = auth
    return RestApiSource.model_validate(data)


@pytest.mark.usefixtures("secret_files")
@pytest.mark.parametrize(
    ("auth", "expected"),
    [
        (
            {"type": "bearer", "tokenSecretRef": {"name": "api", "key": "token"}},
            {"type": "bearer", "token": "tok-123"},
        ),
        (
            {
                "type": "api_key",
                "tokenSecretRef": {"name": "api", "key": "token"},
                "apiKeyName": "X-API-Key",
            },
            {"type": "api_key", "name": "X-API-Key", "api_key": "tok-123", "location": "header"},
        ),
        (
            {
                "type": "http_basic",
                "usernameSecretRef": {"name": "api", "key": "user"},
                "passwordSecretRef": {"name": "api", "key": "pass"},
            },
            {"type": "http_basic", "username": "bob", "password": "pw-456"},
        ),
    ],
)
def test_auth_values_come_from_secret_files(auth: dict, expected: dict) -> None:
    config = rest_api_config(source(auth), "append")
    assert config["client"] == {"base_url": "https://api.example.com/v1/", "auth": expected}
    read = [v for k, v in expected.items() if k in ("token", "api_key", "username", "password")]
    assert secrets.redact(" ".join(read)) == " ".join("***" for _ in read)


def test_write_disposition_is_the_resources_default() -> None:
    config = rest_api_config(source(resourceDefaults={"primary_key": "id"}), "merge")
    assert config["resource_defaults"] == {"primary_key": "id", "write_disposition": "merge"}
    explicit = source(resourceDefaults={"write_disposition": "replace"})
    assert rest_api_config(explicit, "merge")["resource_defaults"]["write_disposition"] == "replace"


def test_resource_level_incremental_moves_into_the_endpoint() -> None:
    incremental = {"cursor_path": "updated_at", "initial_value": "2024-01-01T00:00:00Z"}
    resources = [
        {"name": "items", "endpoint": {"path": "items"}, "incremental": incremental},
        {"name": "users", "incremental": incremental},
        "plain",
    ]
    config = rest_api_config(source(resources=resources), "append")
    items, users, plain = config["resources"]
    assert items == {"name": "items", "endpoint": {"path": "items", "incremental": incremental}}
    assert users == {"name": "users", "endpoint": {"path": "users", "incremental": incremental}}
    assert plain == "plain"


def test_urls() -> None:
    assert sqlalchemy_url("postgresql://u:p@h/db") == "postgresql+psycopg2://u:p@h/db"
    assert sqlalchemy_url("postgres://u:p@h/db") == "postgresql+psycopg2://u:p@h/db"
    assert sqlalchemy_url("mysql+pymysql://h/db") == "mysql+pymysql://h/db"
    assert bucket_url("/data/in") == "file:///data/in"
    assert bucket_url("s3://bucket/x") == "s3://bucket/x"
