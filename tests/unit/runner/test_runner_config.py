"""Parsing the connection spec (docs/contracts.md) from the environment or a file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from datapipelines.runner import config
from datapipelines.runner.config import RunnerEnv, load, parse_spec, pipeline_name
from datapipelines.runner.errors import ConfigError

CONTRACT_EXAMPLE = {
    "type": "rest_api",
    "enabled": True,
    "schemaName": "demo_data",
    "writeDisposition": "append",
    "source": {
        "restApi": {
            "baseUrl": "http://127.0.0.1:8765/",
            "auth": {"type": "bearer", "tokenSecretRef": {"name": "demo-source", "key": "token"}},
            "resources": [
                {
                    "name": "items",
                    "endpoint": {
                        "path": "items",
                        "paginator": {"type": "page_number", "base_page": 1, "total_path": None},
                    },
                    "primary_key": "id",
                    "incremental": {
                        "cursor_path": "updated_at",
                        "initial_value": "1970-01-01T00:00:00Z",
                    },
                }
            ],
            "resourceDefaults": {},
        }
    },
    "destination": {
        "type": "duckdb",
        "duckdb": {"path": "/var/lib/datapipelines/duckdb/demo.duckdb", "volume": {}},
    },
    "retries": 2,
    "timeoutSeconds": 3600,
    "concurrencyPolicy": "Forbid",
    "historyLimit": 10,
    "schedule": "*/15 * * * *",
    "runner": {"image": "localhost/datapipelines-runner:dev", "resources": {}, "env": []},
}


def test_contract_example_parses() -> None:
    spec = parse_spec(CONTRACT_EXAMPLE)
    assert spec.type == "rest_api"
    assert spec.schema_name == "demo_data"
    assert spec.source.rest_api is not None
    assert spec.source.rest_api.auth is not None
    assert spec.source.rest_api.auth.token_secret_ref.name == "demo-source"
    assert spec.destination.duckdb is not None
    assert spec.destination.duckdb.path.endswith("demo.duckdb")


def test_postgres_destination_defaults() -> None:
    data = {
        **CONTRACT_EXAMPLE,
        "destination": {
            "type": "postgres",
            "postgres": {
                "host": "db",
                "database": "warehouse",
                "username": "loader",
                "passwordSecretRef": {"name": "warehouse", "key": "password"},
            },
        },
    }
    pg = parse_spec(data).destination.postgres
    assert pg is not None
    assert (pg.port, pg.ssl_mode) == (5432, "prefer")


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"schemaName": "Demo-Data"}, "schemaName"),
        ({"type": "ftp"}, "type"),
        ({"type": "sql_database"}, "must hold exactly 'sqlDatabase'"),
        ({"writeDisposition": "upsert"}, "writeDisposition"),
        ({"destination": {"type": "postgres"}}, "destination.postgres is required"),
        ({"source": {"restApi": {"baseUrl": "ftp://x", "resources": [{}]}}}, "baseUrl"),
        ({"source": {"restApi": {"baseUrl": "http://x", "resources": []}}}, "resources"),
    ],
)
def test_invalid_specs_name_the_field(change: dict, complaint: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_spec({**CONTRACT_EXAMPLE, **change})
    assert complaint in str(err.value)
    assert str(err.value).startswith("invalid connection spec: ")


def test_auth_needs_its_secret_refs() -> None:
    auth = {"type": "http_basic", "usernameSecretRef": {"name": "a", "key": "u"}}
    data = json.loads(json.dumps(CONTRACT_EXAMPLE))
    data["source"]["restApi"]["auth"] = auth
    with pytest.raises(ConfigError, match="passwordSecretRef"):
        parse_spec(data)


def test_sql_database_needs_tables_or_query() -> None:
    data = {
        **CONTRACT_EXAMPLE,
        "type": "sql_database",
        "source": {"sqlDatabase": {"credentialsSecretRef": {"name": "db", "key": "url"}}},
    }
    with pytest.raises(ConfigError, match="at least one of tables or query"):
        parse_spec(data)


def test_load_from_environment() -> None:
    environ = {"DATAPIPELINES_CONNECTION_SPEC": json.dumps(CONTRACT_EXAMPLE)}
    env = RunnerEnv.from_environ({**environ, "DATAPIPELINES_CONNECTION_NAME": "demo-items"})
    loaded = load(None, env, environ)
    assert loaded.connection_name == "demo-items"
    assert loaded.spec.schema_name == "demo_data"


def test_load_whole_manifest_from_file(tmp_path: Path) -> None:
    manifest = {
        "apiVersion": "datapipelines.io/v1alpha1",
        "kind": "PipelineConnection",
        "metadata": {"name": "from-file"},
        "spec": CONTRACT_EXAMPLE,
    }
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(manifest))
    loaded = load(path, RunnerEnv(), {})
    assert loaded.connection_name == "from-file"


def test_load_bare_spec_from_file_named_after_file(tmp_path: Path) -> None:
    path = tmp_path / "my-conn.yaml"
    path.write_text(yaml.safe_dump(CONTRACT_EXAMPLE))
    assert load(path, RunnerEnv(), {}).connection_name == "my-conn"
    assert load(path, RunnerEnv(), {}, name="override").connection_name == "override"


def test_load_errors_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no connection spec"):
        load(None, RunnerEnv(), {})
    with pytest.raises(ConfigError, match="not JSON"):
        load(None, RunnerEnv(), {"DATAPIPELINES_CONNECTION_SPEC": "{nope"})
    with pytest.raises(ConfigError, match="cannot read"):
        load(tmp_path / "missing.yaml", RunnerEnv(), {})
    wrong_kind = tmp_path / "w.yaml"
    wrong_kind.write_text(yaml.safe_dump({"kind": "Pod", "metadata": {}, "spec": {}}))
    with pytest.raises(ConfigError, match="PipelineConnection"):
        load(wrong_kind, RunnerEnv(), {})


def test_runner_env_defaults() -> None:
    env = RunnerEnv.from_environ({})
    assert env.data_dir == "/var/lib/datapipelines"
    assert env.termination_log == "/dev/termination-log"
    assert env.kube_api is None
    assert config.DEFAULT_SA_DIR == "/var/run/secrets/kubernetes.io/serviceaccount"


def test_pipeline_name_is_stable_snake_case() -> None:
    assert pipeline_name("demo-items") == "dp_demo_items"
    assert pipeline_name("Demo.Items-2") == "dp_demo_items_2"


def test_shipped_example_parses() -> None:
    example = Path(__file__).resolve().parents[3] / "runner-image/examples/demo-items.yaml"
    loaded = load(example, RunnerEnv(), {})
    assert loaded.connection_name == "demo-items"
    assert loaded.spec.write_disposition == "merge"
