"""Pydantic models of the datapipelines custom resources (spec and status) and their enums.

Pure and shared by the operator and the API: no kopf, no I/O. Field names are the camelCase
names stored in Kubernetes (``by_alias``); Python attributes are snake_case. The CRDs in
``crds/`` are the source of truth for validation; these models read what the apiserver
already accepted, so they are lenient with unknown fields (``extra="ignore"``) and only
the free-form subtrees keep arbitrary content.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", use_enum_values=False
    )

    def to_k8s(self) -> dict[str, Any]:
        """The camelCase dict as stored in Kubernetes, without unset/None fields."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


# --------------------------------------------------------------------------- enums


class SourceType(StrEnum):
    REST_API = "rest_api"
    SQL_DATABASE = "sql_database"
    FILESYSTEM = "filesystem"


#: ``spec.type`` → the key of the matching sub-object of ``spec.source``.
SOURCE_KEY: dict[SourceType, str] = {
    SourceType.REST_API: "restApi",
    SourceType.SQL_DATABASE: "sqlDatabase",
    SourceType.FILESYSTEM: "filesystem",
}


class WriteDisposition(StrEnum):
    APPEND = "append"
    REPLACE = "replace"
    MERGE = "merge"


class AuthType(StrEnum):
    BEARER = "bearer"
    API_KEY = "api_key"
    HTTP_BASIC = "http_basic"


class FileFormat(StrEnum):
    CSV = "csv"
    JSONL = "jsonl"
    PARQUET = "parquet"


class DestinationType(StrEnum):
    DUCKDB = "duckdb"
    POSTGRES = "postgres"


class ConcurrencyPolicy(StrEnum):
    FORBID = "Forbid"
    QUEUE = "Queue"
    REPLACE = "Replace"


class Trigger(StrEnum):
    API = "api"
    SCHEDULE = "schedule"
    BATCH = "batch"
    MANUAL = "manual"


class RunPhase(StrEnum):
    QUEUED = "Queued"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELLED = "Cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_PHASES

    @property
    def active(self) -> bool:
        return not self.terminal


TERMINAL_PHASES = frozenset({RunPhase.SUCCEEDED, RunPhase.FAILED, RunPhase.CANCELLED})


def is_terminal(phase: str | None) -> bool:
    """True for Succeeded, Failed, Cancelled; False for Queued, Running and no phase yet."""
    return phase in {p.value for p in TERMINAL_PHASES}


class BatchState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    FINISHED = "finished"
    CANCELLED = "cancelled"


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


# Condition types and the reasons the operator uses.
CONDITION_READY = "Ready"
CONDITION_SUCCEEDED = "Succeeded"
CONDITION_COMPLETE = "Complete"

#: ``status`` of the run's ``Succeeded`` condition for each phase (Tekton-style).
PHASE_CONDITION_STATUS: dict[RunPhase, ConditionStatus] = {
    RunPhase.QUEUED: ConditionStatus.UNKNOWN,
    RunPhase.RUNNING: ConditionStatus.UNKNOWN,
    RunPhase.SUCCEEDED: ConditionStatus.TRUE,
    RunPhase.FAILED: ConditionStatus.FALSE,
    RunPhase.CANCELLED: ConditionStatus.FALSE,
}


# --------------------------------------------------------------------------- shared parts


class SecretRef(_Model):
    """A key of a Secret in the connection's namespace."""

    name: str
    key: str


class Condition(_Model):
    """``metav1.Condition``."""

    type: str
    status: ConditionStatus
    reason: str
    message: str = ""
    last_transition_time: datetime | None = None
    observed_generation: int | None = None


# --------------------------------------------------------------------------- PipelineConnection


class RestApiAuth(_Model):
    type: AuthType
    token_secret_ref: SecretRef | None = None
    username_secret_ref: SecretRef | None = None
    password_secret_ref: SecretRef | None = None
    api_key_name: str | None = None
    location: str | None = None


class RestApiSource(_Model):
    base_url: str
    auth: RestApiAuth | None = None
    resources: list[Any] = Field(default_factory=list)
    resource_defaults: dict[str, Any] | None = None


class SqlIncremental(_Model):
    cursor_column: str
    initial_value: Any = None


class SqlDatabaseSource(_Model):
    credentials_secret_ref: SecretRef
    tables: list[str] = Field(default_factory=list)
    query: str | None = None
    query_table: str = "query_result"
    incremental: SqlIncremental | None = None


class FilesystemSource(_Model):
    bucket_url: str
    file_glob: str = "*"
    format: FileFormat = FileFormat.CSV
    table_name: str = "files"
    volume: dict[str, Any] | None = None


class Source(_Model):
    rest_api: RestApiSource | None = None
    sql_database: SqlDatabaseSource | None = None
    filesystem: FilesystemSource | None = None


DEFAULT_DUCKDB_PATH = "/var/lib/datapipelines/duckdb/datapipelines.duckdb"


class DuckDbDestination(_Model):
    path: str = DEFAULT_DUCKDB_PATH
    volume: dict[str, Any] | None = None


class PostgresDestination(_Model):
    host: str
    port: int = 5432
    database: str
    username: str
    password_secret_ref: SecretRef | None = None
    ssl_mode: str = "prefer"


class Destination(_Model):
    type: DestinationType = DestinationType.DUCKDB
    duckdb: DuckDbDestination | None = None
    postgres: PostgresDestination | None = None


class RunnerOverrides(_Model):
    image: str | None = None
    resources: dict[str, Any] | None = None
    env: list[dict[str, Any]] = Field(default_factory=list)


class ConnectionSpec(_Model):
    type: SourceType
    enabled: bool = True
    schema_name: str
    write_disposition: WriteDisposition = WriteDisposition.APPEND
    source: Source = Field(default_factory=Source)
    destination: Destination = Field(default_factory=Destination)
    retries: int = 2
    timeout_seconds: int = 3600
    concurrency_policy: ConcurrencyPolicy = ConcurrencyPolicy.FORBID
    history_limit: int = 10
    schedule: str | None = None
    time_zone: str | None = None
    suspend: bool = False
    runner: RunnerOverrides = Field(default_factory=RunnerOverrides)


class ConnectionStatus(_Model):
    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list)
    last_run_at: datetime | None = None
    last_run_success: bool | None = None
    last_run_error: str | None = None
    last_run_duration_ms: int | None = None
    last_run_attempts: int | None = None
    last_run_name: str | None = None
    active_runs: list[str] = Field(default_factory=list)
    last_schedule_time: datetime | None = None


# --------------------------------------------------------------------------- PipelineRun


class RunSpec(_Model):
    connection_name: str
    trigger: Trigger = Trigger.MANUAL
    cancel_requested: bool = False
    scheduled_time: datetime | None = None


class RunProgress(_Model):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")

    stage: str | None = None
    records_extracted: int | None = None
    tables: dict[str, int] | None = None
    updated_at: datetime | None = None


class RunResult(_Model):
    """The runner's result (its termination message and ``status.result``), camelCase keys."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")

    success: bool
    duration_ms: int | None = None
    rows_inserted: int | None = None
    records_reported: int | None = None
    progress_counts: dict[str, Any] | None = None
    error: str | None = None
    report: str | None = None
    report_truncated: bool | None = None
    load_id: str | None = None


class RunStatus(_Model):
    phase: RunPhase | None = None
    conditions: list[Condition] = Field(default_factory=list)
    queued_at: datetime | None = None
    start_time: datetime | None = None
    completion_time: datetime | None = None
    job_name: str | None = None
    attempts: int | None = None
    progress: RunProgress | None = None
    result: RunResult | None = None
    observed_generation: int | None = None


# --------------------------------------------------------------------------- PipelineBatch


class BatchSpec(_Model):
    connections: list[str] = Field(default_factory=list)
    cancel_requested: bool = False


class BatchRunRef(_Model):
    connection: str
    run_name: str
    phase: RunPhase | None = None


class BatchStatus(_Model):
    state: BatchState = BatchState.QUEUED
    current: str | None = None
    completed: list[str] = Field(default_factory=list)
    runs: list[BatchRunRef] = Field(default_factory=list)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    conditions: list[Condition] = Field(default_factory=list)
    observed_generation: int | None = None


# --------------------------------------------------------------------------- helpers


def get_condition(conditions: list[dict[str, Any]] | None, type_: str) -> dict[str, Any] | None:
    """The condition of ``type_`` in a raw (dict) condition list, or None."""
    for cond in conditions or []:
        if cond.get("type") == type_:
            return cond
    return None


def set_condition(
    conditions: list[dict[str, Any]] | None,
    *,
    type_: str,
    status: str,
    reason: str,
    message: str,
    now: str,
    observed_generation: int | None = None,
) -> list[dict[str, Any]]:
    """Return a new raw condition list with ``type_`` set.

    ``lastTransitionTime`` changes only when ``status`` changes (API conventions).
    """
    result = [dict(c) for c in conditions or [] if c.get("type") != type_]
    old = get_condition(conditions, type_)
    transition = now if old is None or old.get("status") != status else old["lastTransitionTime"]
    cond: dict[str, Any] = {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": transition,
    }
    if observed_generation is not None:
        cond["observedGeneration"] = observed_generation
    result.append(cond)
    return result
