"""The connection spec (docs/contracts.md) as pydantic models, and where the runner reads it.

The spec comes from `$DATAPIPELINES_CONNECTION_SPEC` (JSON, as the operator renders it) or from
`--config FILE` (YAML/JSON: a whole PipelineConnection manifest or just its spec). Fields the
runner does not use (schedule, retries, runner, …) are accepted and ignored.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import ConfigError

WriteDisposition = Literal["append", "replace", "merge"]
SCHEMA_NAME = r"^[a-z_][a-z0-9_]{0,62}$"
DEFAULT_DATA_DIR = "/var/lib/datapipelines"
DEFAULT_TERMINATION_LOG = "/dev/termination-log"
DEFAULT_SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)


class SecretRef(_Model):
    name: str = Field(min_length=1, max_length=253)
    key: str = Field(min_length=1, max_length=253)


class RestApiAuth(_Model):
    type: Literal["bearer", "api_key", "http_basic"]
    token_secret_ref: SecretRef | None = Field(None, alias="tokenSecretRef")
    username_secret_ref: SecretRef | None = Field(None, alias="usernameSecretRef")
    password_secret_ref: SecretRef | None = Field(None, alias="passwordSecretRef")
    api_key_name: str = Field("Authorization", alias="apiKeyName")
    location: Literal["header", "query", "cookie"] = "header"

    @model_validator(mode="after")
    def _refs_for_type(self) -> RestApiAuth:
        if self.type in ("bearer", "api_key") and self.token_secret_ref is None:
            raise ValueError(f"auth type {self.type} needs tokenSecretRef")
        if self.type == "http_basic" and (
            self.username_secret_ref is None or self.password_secret_ref is None
        ):
            raise ValueError("auth type http_basic needs usernameSecretRef and passwordSecretRef")
        return self


class RestApiSource(_Model):
    base_url: str = Field(alias="baseUrl", pattern=r"^https?://")
    auth: RestApiAuth | None = None
    resources: list[dict[str, Any] | str] = Field(min_length=1)
    resource_defaults: dict[str, Any] = Field(default_factory=dict, alias="resourceDefaults")


class SqlIncremental(_Model):
    cursor_column: str = Field(alias="cursorColumn", min_length=1)
    initial_value: Any = Field(None, alias="initialValue")


class SqlDatabaseSource(_Model):
    credentials_secret_ref: SecretRef = Field(alias="credentialsSecretRef")
    tables: list[str] = Field(default_factory=list)
    query: str | None = None
    query_table: str = Field("query_result", alias="queryTable", pattern=SCHEMA_NAME)
    incremental: SqlIncremental | None = None
    chunk_size: int = Field(50_000, alias="chunkSize", ge=1, le=1_000_000)

    @model_validator(mode="after")
    def _tables_or_query(self) -> SqlDatabaseSource:
        if not self.tables and not self.query:
            raise ValueError("sqlDatabase needs tables and/or query")
        return self


class FilesystemSource(_Model):
    bucket_url: str = Field(alias="bucketUrl", min_length=1)
    file_glob: str = Field("*", alias="fileGlob")
    format: Literal["csv", "jsonl", "parquet"]
    table_name: str = Field("files", alias="tableName", pattern=SCHEMA_NAME)


class Source(_Model):
    rest_api: RestApiSource | None = Field(None, alias="restApi")
    sql_database: SqlDatabaseSource | None = Field(None, alias="sqlDatabase")
    filesystem: FilesystemSource | None = None


class DuckDBDestination(_Model):
    path: str | None = None


class PostgresDestination(_Model):
    host: str = Field(min_length=1)
    port: int = Field(5432, ge=1, le=65535)
    database: str = Field(min_length=1)
    username: str = Field(min_length=1)
    password_secret_ref: SecretRef = Field(alias="passwordSecretRef")
    ssl_mode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] = Field(
        "prefer", alias="sslMode"
    )
    connect_timeout_seconds: int = Field(10, alias="connectTimeoutSeconds", ge=1, le=300)


class Destination(_Model):
    type: Literal["duckdb", "postgres"] = "duckdb"
    duckdb: DuckDBDestination | None = None
    postgres: PostgresDestination | None = None

    @model_validator(mode="after")
    def _settings_for_type(self) -> Destination:
        if self.type == "postgres" and self.postgres is None:
            raise ValueError("destination type postgres needs destination.postgres")
        return self


class ConnectionSpec(_Model):
    type: Literal["rest_api", "sql_database", "filesystem"]
    enabled: bool = True
    schema_name: str = Field(alias="schemaName", pattern=SCHEMA_NAME)
    write_disposition: WriteDisposition = Field("append", alias="writeDisposition")
    source: Source
    destination: Destination = Field(default_factory=Destination)

    @model_validator(mode="after")
    def _source_for_type(self) -> ConnectionSpec:
        field = {"rest_api": "restApi", "sql_database": "sqlDatabase", "filesystem": "filesystem"}
        attr = {"rest_api": "rest_api", "sql_database": "sql_database", "filesystem": "filesystem"}
        if getattr(self.source, attr[self.type]) is None:
            raise ValueError(f"type {self.type} needs source.{field[self.type]}")
        return self


@dataclass(frozen=True)
class RunnerEnv:
    """What the operator hands the pod (docs/contracts.md, "Operator → runner pod")."""

    connection_name: str | None = None
    run_name: str | None = None
    namespace: str | None = None
    data_dir: str = DEFAULT_DATA_DIR
    kube_api: str | None = None
    service_account_dir: str = DEFAULT_SA_DIR
    termination_log: str = DEFAULT_TERMINATION_LOG

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> RunnerEnv:
        env: Mapping[str, str] = os.environ if environ is None else environ
        return cls(
            connection_name=env.get("DATAPIPELINES_CONNECTION_NAME") or None,
            run_name=env.get("DATAPIPELINES_RUN_NAME") or None,
            namespace=env.get("DATAPIPELINES_NAMESPACE") or None,
            data_dir=env.get("DATAPIPELINES_DATA_DIR") or DEFAULT_DATA_DIR,
            kube_api=env.get("DATAPIPELINES_KUBE_API") or None,
            service_account_dir=env.get("DATAPIPELINES_SERVICEACCOUNT_DIR") or DEFAULT_SA_DIR,
            termination_log=env.get("DATAPIPELINES_TERMINATION_LOG") or DEFAULT_TERMINATION_LOG,
        )


@dataclass(frozen=True)
class LoadedConfig:
    spec: ConnectionSpec
    connection_name: str


def parse_spec(data: Any) -> ConnectionSpec:
    """A ConnectionSpec from a parsed document; ConfigError naming the bad fields otherwise."""
    if not isinstance(data, dict):
        raise ConfigError("the connection spec must be a mapping")
    try:
        return ConnectionSpec.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors()[:5]:
            where = ".".join(str(p) for p in err["loc"]) or "spec"
            problems.append(f"{where}: {err['msg']}")
        more = f" (+{exc.error_count() - 5} more)" if exc.error_count() > 5 else ""
        raise ConfigError("invalid connection spec: " + "; ".join(problems) + more) from None


def split_document(doc: Any) -> tuple[Any, str | None]:
    """(spec, metadata.name) of a whole manifest, or (doc, None) for a bare spec."""
    if isinstance(doc, dict) and "spec" in doc and ("kind" in doc or "metadata" in doc):
        kind = doc.get("kind")
        if kind not in (None, "PipelineConnection"):
            raise ConfigError(f"expected a PipelineConnection manifest, got kind {kind!r}")
        name = (doc.get("metadata") or {}).get("name")
        return doc["spec"], name
    return doc, None


def load(
    config_file: str | os.PathLike[str] | None,
    env: RunnerEnv,
    environ: Mapping[str, str] | None = None,
    name: str | None = None,
) -> LoadedConfig:
    """The spec from `config_file`, else from $DATAPIPELINES_CONNECTION_SPEC.

    The connection name (also dlt's pipeline name, the key of its state in the destination) is
    `name`, else $DATAPIPELINES_CONNECTION_NAME, else the manifest's metadata.name, else the
    file's stem.
    """
    environ_: Mapping[str, str] = os.environ if environ is None else environ
    manifest_name: str | None = None
    if config_file is not None:
        path = Path(config_file)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is not valid YAML: {one_problem(exc)}") from None
        data, manifest_name = split_document(doc)
        fallback = path.stem
    else:
        raw = environ_.get("DATAPIPELINES_CONNECTION_SPEC")
        if not raw:
            raise ConfigError("no connection spec: set DATAPIPELINES_CONNECTION_SPEC or --config")
        try:
            doc = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"DATAPIPELINES_CONNECTION_SPEC is not JSON: {exc.msg}") from None
        data, manifest_name = split_document(doc)
        fallback = "connection"
    spec = parse_spec(data)
    connection_name = name or env.connection_name or manifest_name or fallback
    return LoadedConfig(spec=spec, connection_name=connection_name)


def one_problem(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def pipeline_name(connection_name: str) -> str:
    """dlt pipeline name for a connection: lower snake case, stable across runs."""
    name = re.sub(r"[^a-z0-9_]+", "_", connection_name.lower()).strip("_")
    return f"dp_{name or 'connection'}"
