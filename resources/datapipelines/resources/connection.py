"""PipelineConnection: one data sync, source → destination, that PipelineRuns execute.

The CRD schema (``crds/pipelineconnections.yaml``) is generated from these models; the CEL rules
below are enforced by the apiserver at admission, and the pydantic validators enforce the same
shape when the operator and the runner read a spec.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field, field_validator, model_validator

from .meta import (
    CONDITIONS,
    DNS_SUBDOMAIN,
    FREE_FORM,
    QUANTITY,
    SECRET_KEY,
    SQL_IDENTIFIER,
    Condition,
    K8sModel,
    ObjectMeta,
    SecretRef,
    cel,
    crd,
)
from .oauth2 import OAuth2Refresh
from .podcontract import (
    DATA_DIR,
    ENV_RULE,
    PATH_RULE,
    RESERVED_ENV_PREFIX,
    TMP_DIR,
    WAREHOUSE_DEFAULT_FILE,
    WAREHOUSE_DIR,
    bucket_dir,
    env_allowed_cel,
    env_name_allowed,
    is_mountable,
    is_normal_path,
    mountable_cel,
    normal_path_cel,
)
from .saas import (
    CalendlySource,
    FirefliesSource,
    HttpRetry,
    HubSpotSource,
    IntercomSource,
    PandaDocSource,
    TrelloSource,
    WassengerSource,
    XeroSource,
    requests_per_second_field,
)

# --------------------------------------------------------------------------- enums


class SourceType(StrEnum):
    REST_API = "rest_api"
    SQL_DATABASE = "sql_database"
    FILESYSTEM = "filesystem"
    TRELLO = "trello"
    HUBSPOT = "hubspot"
    INTERCOM = "intercom"
    CALENDLY = "calendly"
    PANDADOC = "pandadoc"
    WASSENGER = "wassenger"
    FIREFLIES = "fireflies"
    XERO = "xero"


#: ``spec.type`` → the key of the matching sub-object of ``spec.source``.
SOURCE_KEY: dict[SourceType, str] = {
    SourceType.REST_API: "restApi",
    SourceType.SQL_DATABASE: "sqlDatabase",
    SourceType.FILESYSTEM: "filesystem",
    SourceType.TRELLO: "trello",
    SourceType.HUBSPOT: "hubspot",
    SourceType.INTERCOM: "intercom",
    SourceType.CALENDLY: "calendly",
    SourceType.PANDADOC: "pandadoc",
    SourceType.WASSENGER: "wassenger",
    SourceType.FIREFLIES: "fireflies",
    SourceType.XERO: "xero",
}


class WriteDisposition(StrEnum):
    APPEND = "append"
    REPLACE = "replace"
    MERGE = "merge"


class AuthType(StrEnum):
    BEARER = "bearer"
    API_KEY = "api_key"
    HTTP_BASIC = "http_basic"
    OAUTH2_REFRESH = "oauth2_refresh"


class ApiKeyLocation(StrEnum):
    HEADER = "header"
    QUERY = "query"
    COOKIE = "cookie"


class FileFormat(StrEnum):
    CSV = "csv"
    JSONL = "jsonl"
    PARQUET = "parquet"


class DestinationType(StrEnum):
    DUCKDB = "duckdb"
    POSTGRES = "postgres"


class SslMode(StrEnum):
    DISABLE = "disable"
    ALLOW = "allow"
    PREFER = "prefer"
    REQUIRE = "require"
    VERIFY_CA = "verify-ca"
    VERIFY_FULL = "verify-full"


class ConcurrencyPolicy(StrEnum):
    FORBID = "Forbid"
    QUEUE = "Queue"
    REPLACE = "Replace"


class ContractMode(StrEnum):
    """dlt's schema contract modes."""

    EVOLVE = "evolve"
    FREEZE = "freeze"
    DISCARD_ROW = "discard_row"
    DISCARD_VALUE = "discard_value"


CONDITION_READY = "Ready"

# --------------------------------------------------------------------------- source

_CRON = (
    r"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|"
    r"(\*|[0-5]?[0-9](-[0-5]?[0-9])?)(/[0-9]{1,2})?(,(\*|[0-5]?[0-9](-[0-5]?[0-9])?)(/[0-9]{1,2})?)*"
    r"\s+(\*|([01]?[0-9]|2[0-3])(-([01]?[0-9]|2[0-3]))?)(/[0-9]{1,2})?"
    r"(,(\*|([01]?[0-9]|2[0-3])(-([01]?[0-9]|2[0-3]))?)(/[0-9]{1,2})?)*"
    r"\s+(\*|(0?[1-9]|[12][0-9]|3[01])(-(0?[1-9]|[12][0-9]|3[01]))?)(/[0-9]{1,2})?"
    r"(,(\*|(0?[1-9]|[12][0-9]|3[01])(-(0?[1-9]|[12][0-9]|3[01]))?)(/[0-9]{1,2})?)*"
    r"\s+(\*|(0?[1-9]|1[0-2]|(?i:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec))"
    r"(-(0?[1-9]|1[0-2]|(?i:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)))?)(/[0-9]{1,2})?"
    r"(,(\*|(0?[1-9]|1[0-2]|(?i:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec))"
    r"(-(0?[1-9]|1[0-2]|(?i:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)))?)(/[0-9]{1,2})?)*"
    r"\s+(\*|([0-7]|(?i:sun|mon|tue|wed|thu|fri|sat))(-([0-7]|(?i:sun|mon|tue|wed|thu|fri|sat)))?)"
    r"(/[0-9]{1,2})?(,(\*|([0-7]|(?i:sun|mon|tue|wed|thu|fri|sat))"
    r"(-([0-7]|(?i:sun|mon|tue|wed|thu|fri|sat)))?)(/[0-9]{1,2})?)*)$"
)


def _ref(what: str) -> Any:
    return Field(default=None, description=f"{what}. {SecretRef.__doc__}")


class RestApiAuth(K8sModel):
    """Optional authentication; credentials only through Secret references."""

    model_config = {
        "json_schema_extra": crd(
            **{
                "x-kubernetes-validations": [
                    cel(
                        "self.type in ['http_basic', 'oauth2_refresh'] || has(self.tokenSecretRef)",
                        "auth.tokenSecretRef is required for auth types bearer and api_key",
                        field=".tokenSecretRef",
                        reason="FieldValueRequired",
                    ),
                    cel(
                        "self.type != 'http_basic' || "
                        "(has(self.usernameSecretRef) && has(self.passwordSecretRef))",
                        "auth.usernameSecretRef and auth.passwordSecretRef are required for auth "
                        "type http_basic",
                        field=".usernameSecretRef",
                        reason="FieldValueRequired",
                    ),
                    cel(
                        "self.type != 'oauth2_refresh' || has(self.oauth2)",
                        "auth.oauth2 (secretName, tokenUrl) is required for auth type "
                        "oauth2_refresh",
                        field=".oauth2",
                        reason="FieldValueRequired",
                    ),
                ]
            }
        )
    }

    type: AuthType = Field(description="Authentication scheme.")
    token_secret_ref: SecretRef | None = _ref("Token (bearer) or key (api_key)")
    username_secret_ref: SecretRef | None = _ref("User name (http_basic)")
    password_secret_ref: SecretRef | None = _ref("Password (http_basic)")
    api_key_name: str = Field(
        default="Authorization",
        max_length=256,
        pattern=r"^[A-Za-z0-9_.\-]+$",
        description="Header/query parameter name of the API key (api_key).",
    )
    location: ApiKeyLocation = Field(
        default=ApiKeyLocation.HEADER, description="Where the API key goes (api_key)."
    )
    oauth2: OAuth2Refresh | None = Field(
        default=None,
        description="OAuth 2.0 refresh-token grant with rotation (oauth2_refresh).",
    )

    @model_validator(mode="after")
    def _refs_for_type(self) -> RestApiAuth:
        if self.type is AuthType.OAUTH2_REFRESH:
            if self.oauth2 is None:
                raise ValueError("auth.oauth2 is required for auth type oauth2_refresh")
            return self
        if self.type is not AuthType.HTTP_BASIC and self.token_secret_ref is None:
            raise ValueError("tokenSecretRef is required for auth types bearer and api_key")
        if self.type is AuthType.HTTP_BASIC and (
            self.username_secret_ref is None or self.password_secret_ref is None
        ):
            raise ValueError("usernameSecretRef and passwordSecretRef are required for http_basic")
        return self


#: A value of a free-form dlt setting that stands for an explicit null (``kubectl apply``
#: drops nulls): e.g. ``paginator: {type: page_number, total_path: "$null"}``.
NULL_SPELLING = "$null"


class RestApiSource(K8sModel):
    """Settings of a rest_api source (dlt rest_api)."""

    base_url: str = Field(
        max_length=2048,
        pattern=r"^https?://[^\s]+$",
        description="Base URL of the REST API (http or https).",
    )
    auth: RestApiAuth | None = None
    resources: list[Any] = Field(
        min_length=1,
        max_length=500,
        description="dlt rest_api resource configurations (free-form, passed to dlt as written).",
        json_schema_extra=crd(items=FREE_FORM),
    )
    resource_defaults: dict[str, Any] = Field(
        default_factory=dict,
        description="dlt rest_api resource defaults (free-form).",
        json_schema_extra=crd(**FREE_FORM),
    )
    retry: HttpRetry | None = Field(
        default=None,
        description="HTTP retries and waits (default: 3 tries, waits capped at 60 s).",
    )
    requests_per_second: float | None = requests_per_second_field()


class SqlIncremental(K8sModel):
    """Optional incremental loading by a cursor column."""

    cursor_column: str = Field(
        min_length=1,
        max_length=255,
        description="Column that grows with new or changed rows (e.g. updated_at): each run "
        "loads only rows whose value is at or past the last one loaded.",
    )
    initial_value: int | str | None = Field(
        default=None, description="Cursor value of the first run (default: load everything)."
    )


class SqlDatabaseSource(K8sModel):
    """Settings of a sql_database source."""

    model_config = {
        "json_schema_extra": crd(
            **{
                "x-kubernetes-validations": [
                    cel(
                        "(has(self.tables) && size(self.tables) > 0) || has(self.query)",
                        "sqlDatabase needs at least one of tables or query",
                        reason="FieldValueRequired",
                    )
                ]
            }
        )
    }

    credentials_secret_ref: SecretRef = Field(
        description=f"SQLAlchemy URL of the source database. {SecretRef.__doc__}"
    )
    tables: list[str] = Field(
        default_factory=list,
        max_length=1000,
        description="Tables to load (optionally schema-qualified).",
        json_schema_extra=crd(
            **{
                "x-kubernetes-list-type": "set",
                "items": {
                    "type": "string",
                    "maxLength": 255,
                    "pattern": r"^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$",
                },
            }
        ),
    )
    query: str | None = Field(
        default=None, max_length=65536, description="Optional SELECT, loaded as table queryTable."
    )
    query_table: str = Field(
        default="query_result", pattern=SQL_IDENTIFIER, description="Destination table of query."
    )
    incremental: SqlIncremental | None = None
    chunk_size: int = Field(
        default=50_000, ge=1, le=1_000_000, description="Rows read from the source per chunk."
    )

    @model_validator(mode="after")
    def _tables_or_query(self) -> SqlDatabaseSource:
        if not self.tables and not self.query:
            raise ValueError("sqlDatabase needs at least one of tables or query")
        return self


class ClaimVolume(K8sModel):
    """A PersistentVolumeClaim in the connection's namespace (core/v1)."""

    claim_name: str = Field(
        max_length=253, pattern=DNS_SUBDOMAIN, description="The claim (same namespace)."
    )
    read_only: bool | None = Field(default=None, description="Mount the claim read-only.")


class EmptyDirVolume(K8sModel):
    """A directory that lives and dies with the pod (core/v1)."""

    medium: str | None = Field(
        default=None,
        max_length=16,
        description="Storage medium: unset for the node's disk, Memory for a tmpfs.",
    )
    size_limit: int | str | None = Field(
        default=None,
        description="Most the directory may hold, a quantity (e.g. 1Gi); unset: no limit.",
        json_schema_extra=crd(pattern=QUANTITY),
    )


class ConfigMapVolume(K8sModel):
    """A ConfigMap's keys as files (core/v1)."""

    name: str = Field(
        max_length=253, pattern=DNS_SUBDOMAIN, description="The ConfigMap (same namespace)."
    )
    optional: bool | None = Field(
        default=None, description="Start the pod even if the ConfigMap does not exist."
    )


class HostPathVolume(K8sModel):
    """A directory or file of the node (core/v1)."""

    path: str = Field(
        min_length=1, max_length=1024, pattern=r"^/", description="Absolute path on the node."
    )
    type: str | None = Field(
        default=None,
        max_length=32,
        description="core/v1 HostPathType check (e.g. Directory, DirectoryOrCreate, File); "
        "unset: no check.",
    )


class NfsVolume(K8sModel):
    """An NFS export (core/v1)."""

    server: str = Field(
        min_length=1, max_length=253, description="Host name or IP address of the NFS server."
    )
    path: str = Field(min_length=1, max_length=1024, description="Path the server exports.")
    read_only: bool | None = Field(default=None, description="Mount the export read-only.")


class CsiVolume(K8sModel):
    """An inline (ephemeral) volume of a CSI driver (core/v1)."""

    driver: str = Field(
        min_length=1, max_length=253, description="Name of the CSI driver on the cluster."
    )
    read_only: bool | None = Field(default=None, description="Mount the volume read-only.")
    fs_type: str | None = Field(
        default=None,
        max_length=32,
        description="File system type (e.g. ext4), passed to the driver; unset: its default.",
    )
    volume_attributes: dict[str, str] | None = Field(
        default=None,
        description="Driver-specific settings (at most 32 keys).",
        json_schema_extra=crd(maxProperties=32),
    )


#: Volume types a connection may name, as their field names; the installation allows a subset.
VOLUME_TYPES = ("persistentVolumeClaim", "emptyDir", "configMap", "hostPath", "nfs", "csi")


class VolumeSource(K8sModel):
    """A core/v1 volume source of one of the supported types (no name: the operator names it).
    Which types are allowed is a setting of the installation (docs/security.md)."""

    model_config = {
        "json_schema_extra": crd(
            **{
                "x-kubernetes-validations": [
                    cel(
                        "["
                        + ", ".join(f"has(self.{t})" for t in VOLUME_TYPES)
                        + "].filter(x, x).size() == 1",
                        "a volume source names exactly one volume type ("
                        + ", ".join(VOLUME_TYPES)
                        + ")",
                    )
                ]
            }
        )
    }

    persistent_volume_claim: ClaimVolume | None = Field(
        default=None, description="A PersistentVolumeClaim in the connection's namespace."
    )
    empty_dir: EmptyDirVolume | None = Field(
        default=None, description="A directory that lives and dies with the pod."
    )
    config_map: ConfigMapVolume | None = Field(
        default=None, description="A ConfigMap's keys as files."
    )
    host_path: HostPathVolume | None = Field(
        default=None, description="A directory or file of the node."
    )
    nfs: NfsVolume | None = Field(default=None, description="An NFS export.")
    csi: CsiVolume | None = Field(
        default=None, description="An inline (ephemeral) volume of a CSI driver."
    )

    @property
    def kind(self) -> str:
        """The field name of the volume type in use."""
        for name, value in self.model_dump(by_alias=True, exclude_none=True).items():
            if value is not None:
                return name
        return ""


_BUCKET_DIR = (
    "(self.bucketUrl.startsWith('file://') ? self.bucketUrl.substring(7) : self.bucketUrl)"
)


class FilesystemSource(K8sModel):
    """Settings of a filesystem source."""

    model_config = {
        "json_schema_extra": crd(
            **{
                "x-kubernetes-validations": [
                    cel(
                        f"!{_BUCKET_DIR}.startsWith('/') || ({normal_path_cel(_BUCKET_DIR)})",
                        f"filesystem.bucketUrl must name {PATH_RULE}",
                        field=".bucketUrl",
                    ),
                    cel(
                        f"!has(self.volume) || {_BUCKET_DIR}.startsWith('/')",
                        "filesystem.volume needs a local bucketUrl (file:///path or /path): the "
                        "volume is mounted at that path",
                        field=".bucketUrl",
                    ),
                    cel(
                        f"!has(self.volume) || !{_BUCKET_DIR}.startsWith('/') || "
                        f"({mountable_cel(_BUCKET_DIR)})",
                        "filesystem.volume would be mounted over a directory the runner needs "
                        "(/, /tmp, /var/lib/datapipelines, secret or system directories): use "
                        "another bucketUrl path, e.g. under /data",
                        field=".bucketUrl",
                    ),
                ]
            }
        )
    }

    bucket_url: str = Field(
        min_length=1,
        max_length=2048,
        description="file:///path, a plain absolute path, or a bucket URL.",
    )
    file_glob: str = Field(
        default="*",
        max_length=1024,
        description="Files to read under bucketUrl, a glob (e.g. **/*.csv for subdirectories "
        "too). Unless writeDisposition is replace, a run reads only new or modified files.",
    )
    format: FileFormat = Field(
        default=FileFormat.CSV,
        description="Format of every file matched: csv (with a header row), jsonl or parquet.",
    )
    table_name: str = Field(
        default="files",
        pattern=SQL_IDENTIFIER,
        description="Destination table the rows of all the files go to.",
    )
    volume: VolumeSource | None = Field(
        default=None,
        description="Optional volume mounted read-only at the bucket path.",
    )

    @model_validator(mode="after")
    def _local_directory(self) -> FilesystemSource:
        directory = bucket_dir(self.bucket_url)
        if directory is not None and not is_normal_path(directory):
            raise ValueError(f"filesystem.bucketUrl {self.bucket_url!r} must name {PATH_RULE}")
        if self.volume is not None:
            if directory is None:
                raise ValueError(
                    "filesystem.volume needs a local bucketUrl (file:///path or /path)"
                )
            if not is_mountable(directory):
                raise ValueError(
                    f"filesystem.bucketUrl {self.bucket_url!r}: a volume cannot be mounted "
                    "there (/, /tmp, /var/lib/datapipelines, secret or system directories); "
                    "use another path, e.g. under /data"
                )
        return self


class Source(K8sModel):
    """Source settings: exactly the sub-object matching spec.type."""

    rest_api: RestApiSource | None = None
    sql_database: SqlDatabaseSource | None = None
    filesystem: FilesystemSource | None = None
    trello: TrelloSource | None = None
    hubspot: HubSpotSource | None = None
    intercom: IntercomSource | None = None
    calendly: CalendlySource | None = None
    pandadoc: PandaDocSource | None = None
    wassenger: WassengerSource | None = None
    fireflies: FirefliesSource | None = None
    xero: XeroSource | None = None


#: ``spec.type`` -> the attribute of :class:`Source` holding its settings.
_SOURCE_ATTR: dict[SourceType, str] = {
    t: next(name for name, f in Source.model_fields.items() if f.alias == key)
    for t, key in SOURCE_KEY.items()
}


# --------------------------------------------------------------------------- destination

_W = WAREHOUSE_DIR
_DUCK_DIR = "self.path.substring(0, self.path.lastIndexOf('/'))"


class DuckDbDestination(K8sModel):
    """A DuckDB file. Default: the shared warehouse file on the warehouse volume."""

    model_config = {
        "json_schema_extra": crd(
            **{
                "x-kubernetes-validations": [
                    cel(
                        f"!has(self.path) || ({normal_path_cel('self.path')})",
                        f"destination.duckdb.path must be {PATH_RULE}",
                        field=".path",
                    ),
                    cel(
                        f"!has(self.path) || self.path.startsWith('{_W}/') || has(self.volume) "
                        "|| (has(self.ephemeral) && self.ephemeral)",
                        f"destination.duckdb.path outside {_W}/ is on storage that is lost with "
                        "the pod: set destination.duckdb.volume (e.g. a persistentVolumeClaim), "
                        f"put the file in {_W}/ (the warehouse volume), or set "
                        "destination.duckdb.ephemeral: true to accept losing the data",
                        field=".path",
                    ),
                    cel(
                        f"!has(self.path) || !self.path.startsWith('{_W}/') || !has(self.volume)",
                        f"destination.duckdb.volume cannot be used with a path in {_W}/, which is "
                        "the warehouse volume already",
                        field=".volume",
                        reason="FieldValueForbidden",
                    ),
                    cel(
                        "has(self.path) || !has(self.volume)",
                        "destination.duckdb.volume needs destination.duckdb.path",
                        field=".path",
                        reason="FieldValueRequired",
                    ),
                    cel(
                        "!has(self.volume) || !has(self.ephemeral) || !self.ephemeral",
                        "destination.duckdb.ephemeral and destination.duckdb.volume exclude each "
                        "other",
                        field=".ephemeral",
                        reason="FieldValueForbidden",
                    ),
                    cel(
                        f"!has(self.volume) || ({mountable_cel(_DUCK_DIR)})",
                        "destination.duckdb.path must be in a directory of its own (e.g. "
                        "/data/x.duckdb): its volume cannot be mounted on /, /tmp, "
                        "/var/lib/datapipelines, a secret or a system directory",
                        field=".path",
                    ),
                    cel(
                        "!has(self.ephemeral) || !self.ephemeral || (has(self.path) && "
                        f"(self.path.startsWith('{TMP_DIR}/') || "
                        f"(self.path.startsWith('{DATA_DIR}/') && "
                        f"!self.path.startsWith('{_W}/'))))",
                        "an ephemeral DuckDB file lives on the pod's scratch space: put it under "
                        f"{TMP_DIR}/ or {DATA_DIR}/ (not the warehouse directory {_W}/)",
                        field=".path",
                    ),
                ]
            }
        )
    }

    path: str | None = Field(
        default=None,
        max_length=1024,
        pattern=r"^/.+\.duckdb$",
        description=f"Absolute path of the DuckDB file (default {WAREHOUSE_DEFAULT_FILE}).",
    )
    volume: VolumeSource | None = Field(
        default=None,
        description="Volume mounted at the file's directory (for a path outside the warehouse "
        "directory).",
    )
    ephemeral: bool = Field(
        default=False,
        description="Accept a file on an emptyDir, lost with the pod (tests, scratch work).",
    )

    @field_validator("path")
    @classmethod
    def _normal_path(cls, path: str | None) -> str | None:
        if path is not None and not is_normal_path(path):
            raise ValueError(f"destination.duckdb.path {path!r} must be {PATH_RULE}")
        return path

    @property
    def file(self) -> str:
        return self.path or WAREHOUSE_DEFAULT_FILE

    @property
    def stem(self) -> str:
        name = self.file.rsplit("/", 1)[-1]
        return name[: -len(".duckdb")] if name.endswith(".duckdb") else name

    @property
    def on_warehouse(self) -> bool:
        return self.file.startswith(WAREHOUSE_DIR + "/")


class PostgresDestination(K8sModel):
    """A PostgreSQL database; the schema is the connection's schemaName."""

    host: str = Field(min_length=1, max_length=253, description="Host name or IP of the server.")
    port: int = Field(default=5432, ge=1, le=65535, description="TCP port of the server.")
    database: str = Field(min_length=1, max_length=63, description="The database to load into.")
    username: str = Field(min_length=1, max_length=63, description="The role to connect as.")
    password_secret_ref: SecretRef = Field(description=f"Password of username. {SecretRef.__doc__}")
    ssl_mode: SslMode = Field(
        default=SslMode.PREFER,
        description="libpq sslmode: disable, allow, prefer, require, verify-ca or verify-full.",
    )
    connect_timeout_seconds: int = Field(
        default=10, ge=1, le=300, description="Seconds to wait for a connection to the server."
    )


class Destination(K8sModel):
    """Where the data goes (DuckDB on the warehouse volume by default)."""

    model_config = {
        "json_schema_extra": crd(
            default={"type": "duckdb"},
            **{
                "x-kubernetes-validations": [
                    cel(
                        "self.type != 'postgres' || has(self.postgres)",
                        "destination.postgres is required when destination.type is postgres",
                        field=".postgres",
                        reason="FieldValueRequired",
                    ),
                    cel(
                        "self.type == 'postgres' || !has(self.postgres)",
                        "destination.postgres is only allowed when destination.type is postgres",
                        field=".postgres",
                        reason="FieldValueForbidden",
                    ),
                    cel(
                        "self.type == 'duckdb' || !has(self.duckdb)",
                        "destination.duckdb is only allowed when destination.type is duckdb",
                        field=".duckdb",
                        reason="FieldValueForbidden",
                    ),
                ]
            },
        )
    }

    type: DestinationType = Field(
        default=DestinationType.DUCKDB,
        description="Destination kind: duckdb or postgres; only the matching sub-object may be "
        "set (postgres requires it).",
    )
    duckdb: DuckDbDestination | None = None
    postgres: PostgresDestination | None = None

    @model_validator(mode="after")
    def _settings_for_type(self) -> Destination:
        if self.type is DestinationType.POSTGRES and self.postgres is None:
            raise ValueError("destination.postgres is required when destination.type is postgres")
        return self

    @property
    def duck(self) -> DuckDbDestination:
        """The DuckDB settings (defaults when none are given)."""
        return self.duckdb or DuckDbDestination()


# --------------------------------------------------------------------------- runner pod


class KeySelector(K8sModel):
    """One key of a Secret or ConfigMap in the connection's namespace (core/v1)."""

    name: str = Field(
        max_length=253, pattern=DNS_SUBDOMAIN, description="The object's name (same namespace)."
    )
    key: str = Field(max_length=253, pattern=SECRET_KEY, description="The key to read.")
    optional: bool | None = Field(
        default=None, description="Start the container even if the object or key is missing."
    )


class FieldSelector(K8sModel):
    """A field of the runner pod (core/v1 ObjectFieldSelector)."""

    field_path: str = Field(
        max_length=256, description="Path of the field, e.g. metadata.name or spec.nodeName."
    )
    api_version: str | None = Field(
        default=None, max_length=64, description="Version the path is in (default v1)."
    )


class ResourceFieldSelector(K8sModel):
    """A resource request or limit of a container (core/v1)."""

    resource: str = Field(
        max_length=64, description="The resource, e.g. limits.cpu or requests.memory."
    )
    container_name: str | None = Field(
        default=None, max_length=63, description="The container (default: the runner's own)."
    )
    divisor: int | str | None = Field(
        default=None, description="Unit the value is expressed in (a quantity, default 1)."
    )


class EnvVarSource(K8sModel):
    """core/v1 EnvVarSource. Which Secrets runner.env may read is a setting of the installation."""

    model_config = {
        "json_schema_extra": crd(
            **{
                "x-kubernetes-validations": [
                    cel(
                        "[has(self.secretKeyRef), has(self.configMapKeyRef), has(self.fieldRef), "
                        "has(self.resourceFieldRef)].filter(x, x).size() == 1",
                        "valueFrom needs exactly one of secretKeyRef, configMapKeyRef, fieldRef, "
                        "resourceFieldRef",
                    )
                ]
            }
        )
    }

    secret_key_ref: KeySelector | None = Field(
        default=None,
        description="A key of a Secret; only the Secrets the installation allows for runner.env "
        "(credentials belong in the …SecretRef fields).",
    )
    config_map_key_ref: KeySelector | None = Field(
        default=None, description="A key of a ConfigMap."
    )
    field_ref: FieldSelector | None = Field(default=None, description="A field of the pod.")
    resource_field_ref: ResourceFieldSelector | None = Field(
        default=None, description="A resource request or limit of a container."
    )


class EnvVar(K8sModel):
    """An environment variable of the runner container (core/v1 EnvVar)."""

    model_config = {
        "json_schema_extra": crd(
            **{
                "x-kubernetes-validations": [
                    cel(
                        f"!self.name.startsWith('{RESERVED_ENV_PREFIX}')",
                        f"runner.env names starting with {RESERVED_ENV_PREFIX} are set by the "
                        "operator",
                        field=".name",
                        reason="FieldValueForbidden",
                    ),
                    cel(
                        env_allowed_cel("self.name"),
                        ENV_RULE,
                        field=".name",
                        reason="FieldValueForbidden",
                        message_expression=f"'runner.env ' + self.name + ': ' + {ENV_RULE!r}",
                    ),
                    cel(
                        "!(has(self.value) && has(self.valueFrom))",
                        "runner.env entries have value or valueFrom, not both",
                        reason="FieldValueForbidden",
                    ),
                ]
            }
        )
    }

    name: str = Field(
        min_length=1,
        max_length=256,
        pattern=r"^[-._a-zA-Z][-._a-zA-Z0-9]*$",
        description="Variable name; allowed: dlt's NORMALIZE__*, LOAD__*, EXTRACT__*, "
        "DATA_WRITER__*, RUNTIME__LOG_LEVEL and RUNTIME__REQUEST_*, HTTP_PROXY, HTTPS_PROXY, "
        "NO_PROXY, TZ and the runner's RUNNER__* switches.",
    )
    value: str | None = Field(
        default=None, max_length=32768, description="The value (not together with valueFrom)."
    )
    value_from: EnvVarSource | None = Field(
        default=None,
        description="Where the value comes from (not together with value): exactly one of "
        "secretKeyRef, configMapKeyRef, fieldRef, resourceFieldRef.",
    )

    @field_validator("name")
    @classmethod
    def _allowed_name(cls, name: str) -> str:
        if name.startswith(RESERVED_ENV_PREFIX):
            raise ValueError(
                f"runner.env {name}: names starting with {RESERVED_ENV_PREFIX} are "
                "set by the operator"
            )
        if not env_name_allowed(name):
            raise ValueError(f"runner.env {name}: {ENV_RULE}")
        return name


_QUANTITIES = crd(
    maxProperties=16,
    additionalProperties={"x-kubernetes-int-or-string": True, "pattern": QUANTITY, "maxLength": 64},
)


class ResourceRequirements(K8sModel):
    """core/v1 ResourceRequirements of the runner container."""

    model_config = {
        "json_schema_extra": crd(
            **{
                "x-kubernetes-validations": [
                    cel(
                        "!has(self.limits) || !has(self.requests) || "
                        "['cpu', 'memory', 'ephemeral-storage'].all(k, "
                        "!(k in self.requests) || !(k in self.limits) || "
                        "!quantity(string(self.requests[k])).isGreaterThan("
                        "quantity(string(self.limits[k]))))",
                        "runner.resources.requests must not exceed runner.resources.limits",
                        field=".requests",
                    )
                ]
            }
        )
    }

    limits: dict[str, int | str] | None = Field(
        default=None,
        description="Limits per resource (cpu, memory, ephemeral-storage), e.g. memory: 2Gi; "
        "each overrides the installation's default.",
        json_schema_extra=_QUANTITIES,
    )
    requests: dict[str, int | str] | None = Field(
        default=None,
        description="Requests per resource (cpu, memory, ephemeral-storage), e.g. cpu: 500m; "
        "each overrides the installation's default.",
        json_schema_extra=_QUANTITIES,
    )


class RunnerOverrides(K8sModel):
    """Overrides for the runner pod."""

    image: str | None = Field(
        default=None,
        min_length=1,
        max_length=512,
        description="Runner image override; which images are allowed is a setting of the "
        "installation (default: the chart's runner repository).",
    )
    resources: ResourceRequirements | None = None
    env: list[EnvVar] = Field(
        default_factory=list,
        max_length=100,
        description="Extra environment variables of the runner container.",
    )


# --------------------------------------------------------------------------- spec and status


class SchemaContract(K8sModel):
    """dlt's schema contract: what a run may change in the destination's schema."""

    tables: ContractMode | None = Field(default=None, description="New tables.")
    columns: ContractMode | None = Field(default=None, description="New columns.")
    data_type: ContractMode | None = Field(
        default=None, description="Values whose type differs from the column's (variants)."
    )

    def to_dlt(self) -> dict[str, str]:
        return {k: v.value for k, v in self if v is not None}


_SCHEMA_STEM = (
    "(has(self.destination.duckdb) && has(self.destination.duckdb.path) ? "
    "self.destination.duckdb.path.substring(self.destination.duckdb.path.lastIndexOf('/') + 1, "
    "self.destination.duckdb.path.size() - 7) : 'warehouse')"
)


class ConnectionSpec(K8sModel):
    """Desired state of a connection."""

    model_config = {
        "json_schema_extra": crd(
            **{
                "x-kubernetes-validations": [
                    cel(
                        " && ".join(
                            f"(self.type == '{t.value}') == has(self.source.{key})"
                            for t, key in SOURCE_KEY.items()
                        ),
                        "spec.source must hold exactly the sub-object matching spec.type ("
                        + ", ".join(f"{t.value}: {key}" for t, key in SOURCE_KEY.items())
                        + ")",
                        field=".source",
                    ),
                    cel(
                        "!has(self.timeZone) || has(self.schedule)",
                        "spec.timeZone needs spec.schedule",
                        field=".timeZone",
                        reason="FieldValueForbidden",
                    ),
                    cel(
                        "!has(self.destination) || self.destination.type != 'duckdb' || "
                        f"self.schemaName != {_SCHEMA_STEM}",
                        "spec.schemaName must differ from the DuckDB file's name without "
                        ".duckdb (DuckDB cannot tell that catalog from a schema of the same name)",
                        field=".schemaName",
                    ),
                ]
            }
        )
    }

    type: SourceType = Field(description="Source kind; spec.source holds exactly the match.")
    enabled: bool = Field(default=True, description="Included in /run_selected batches.")
    schema_name: str = Field(
        pattern=SQL_IDENTIFIER,
        description="Destination schema/dataset: a lower-case SQL identifier.",
    )
    write_disposition: WriteDisposition = Field(
        default=WriteDisposition.APPEND,
        description="How loaded rows meet a table's existing ones: append, replace (the table "
        "gets only this run's rows) or merge (upsert on the primary key). For rest_api the "
        "default of every resource; the SaaS types merge every table on its key.",
    )
    source: Source
    destination: Destination = Field(default_factory=Destination)
    schema_contract: SchemaContract | None = None
    retries: int = Field(
        default=2, ge=0, le=10, description="Retries after a failed attempt (Job backoffLimit)."
    )
    timeout_seconds: int = Field(
        default=3600, ge=1, le=86400, description="Deadline of a run (activeDeadlineSeconds)."
    )
    start_timeout_seconds: int = Field(
        default=300,
        ge=10,
        le=86400,
        description="How long a run's pod may take to start (image pull, scheduling, volumes) "
        "before the run fails with the reason.",
    )
    concurrency_policy: ConcurrencyPolicy = Field(
        default=ConcurrencyPolicy.FORBID, description="What a new run does while one is active."
    )
    history_limit: int = Field(
        default=10, ge=0, le=1000, description="Finished PipelineRuns kept per connection."
    )
    schedule: str | None = Field(
        default=None,
        max_length=128,
        description="Optional cron (5 fields or @hourly/@daily/@weekly/@monthly/@yearly).",
        json_schema_extra=crd(
            **{
                "x-kubernetes-validations": [
                    cel(
                        f"self.matches(r'{_CRON}')",
                        "spec.schedule must be a 5-field cron expression (minute hour "
                        "day-of-month month day-of-week, e.g. '*/15 * * * *') or one of @hourly, "
                        "@daily, @midnight, @weekly, @monthly, @yearly, @annually",
                    )
                ]
            }
        ),
    )
    time_zone: str | None = Field(
        default=None,
        max_length=64,
        pattern=r"^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)*$",
        description="IANA time zone of schedule (default UTC).",
    )
    suspend: bool = Field(default=False, description="Pauses the schedule only.")
    runner: RunnerOverrides = Field(default_factory=RunnerOverrides)

    @model_validator(mode="after")
    def _source_for_type(self) -> ConnectionSpec:
        key = SOURCE_KEY[self.type]
        present = [k for k, v in self.source.model_dump(by_alias=True).items() if v is not None]
        if present != [key]:
            raise ValueError(
                f"spec.source must hold exactly {key!r} for type {self.type.value!r} "
                f"(found {present or 'nothing'})"
            )
        duck = self.destination.duck
        if self.destination.type is DestinationType.DUCKDB and self.schema_name == duck.stem:
            raise ValueError(
                f"schemaName {self.schema_name!r} must differ from the DuckDB file name "
                f"{self.destination.duck.file.rsplit('/', 1)[-1]!r}"
            )
        return self

    @property
    def source_settings(self) -> BaseModel | None:
        """The sub-object of ``spec.source`` matching ``spec.type``."""
        return getattr(self.source, _SOURCE_ATTR[self.type])  # type: ignore[no-any-return]

    @property
    def oauth2(self) -> OAuth2Refresh | None:
        """The rotating OAuth 2.0 grant of this connection's source, if it has one."""
        settings = self.source_settings
        if isinstance(settings, RestApiSource):
            return settings.auth.oauth2 if settings.auth is not None else None
        if isinstance(settings, XeroSource):
            return settings.oauth2
        return None

    def secret_refs(self) -> list[SecretRef]:
        """Every Secret this connection's runner reads as a file (deduplicated, in order)."""
        found: list[SecretRef] = []
        candidates: list[SecretRef | None] = []
        src = self.source
        if src.rest_api and src.rest_api.auth:
            auth = src.rest_api.auth
            candidates += [
                auth.token_secret_ref,
                auth.username_secret_ref,
                auth.password_secret_ref,
            ]
        oauth2 = self.oauth2
        if oauth2 is not None:
            candidates += oauth2.secret_refs()
        if src.sql_database:
            candidates.append(src.sql_database.credentials_secret_ref)
        if src.trello:
            candidates += [src.trello.api_key_secret_ref, src.trello.token_secret_ref]
        if src.hubspot:
            candidates.append(src.hubspot.token_secret_ref)
        if src.intercom:
            candidates.append(src.intercom.token_secret_ref)
        if src.calendly:
            candidates.append(src.calendly.token_secret_ref)
        if src.pandadoc:
            candidates.append(src.pandadoc.api_key_secret_ref)
        if src.wassenger:
            candidates.append(src.wassenger.api_key_secret_ref)
        if src.fireflies:
            candidates.append(src.fireflies.api_key_secret_ref)
        if self.destination.postgres:
            candidates.append(self.destination.postgres.password_secret_ref)
        for ref in candidates:
            if ref is not None and ref not in found:
                found.append(ref)
        return found


class ConnectionStatus(K8sModel):
    """Observed state of a connection (written by the operator only)."""

    observed_generation: int | None = Field(
        default=None,
        description="The metadata.generation the operator last validated.",
        json_schema_extra=crd(format="int64"),
    )
    conditions: list[Condition] = Field(default_factory=list, json_schema_extra=CONDITIONS)
    last_run_at: datetime | None = Field(
        default=None, description="Start of the last finished run."
    )
    last_run_success: bool | None = Field(
        default=None, description="Whether the last finished run succeeded."
    )
    last_run_error: str | None = Field(
        default=None, max_length=32768, description="Error of the last finished run, if any."
    )
    last_run_duration_ms: int | None = Field(
        default=None,
        description="Duration of the last finished run, in milliseconds.",
        json_schema_extra=crd(format="int64"),
    )
    last_run_attempts: int | None = Field(
        default=None, description="Pods the last finished run tried."
    )
    last_run_name: str | None = Field(
        default=None, description="Name of the last finished PipelineRun."
    )
    last_schedule_time: datetime | None = Field(
        default=None, description="The last schedule tick that made a run."
    )
    last_success_time: datetime | None = Field(
        default=None,
        description="When the newest successful run ended; kept when later runs fail and "
        "when runs are pruned (exported as datapipelines_connection_last_success_timestamp_"
        "seconds).",
    )


class PipelineConnection(K8sModel):
    """PipelineConnection: one data sync (source → destination) that PipelineRuns execute."""

    api_version: str = ""
    kind: str = ""
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: ConnectionSpec
    status: ConnectionStatus = Field(default_factory=ConnectionStatus)
