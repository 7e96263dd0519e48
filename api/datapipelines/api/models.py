"""Response bodies of the REST API (api-guide fields first, additions after).

Field names are the guide's snake_case names; timestamps are RFC 3339 strings as Kubernetes
writes them. Additions beyond the guide are marked "(addition)" in their descriptions.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

TaskState = Literal["queued", "running", "finished", "cancelled"]


#: A time as the API writes it (RFC 3339 in UTC, e.g. 2026-12-08T01:00:00Z): a string whose
#: OpenAPI schema says `format: date-time`, so generated clients parse it as a time.
Timestamp = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]


class ErrorBody(BaseModel):
    detail: str = Field(description="What went wrong, for humans.")
    model_config = ConfigDict(extra="allow")


class ConflictBody(ErrorBody):
    active_task_id: str | None = Field(
        default=None,
        description="The run that holds the connection, under concurrencyPolicy Forbid (addition).",
    )
    connection: str
    namespaces: list[str] | None = Field(
        default=None,
        description="The served namespaces that each have a connection of this name; names "
        "must be unique across them (addition).",
    )


class ConnectionOut(BaseModel):
    name: str
    type: str
    enabled: bool
    schema_name: str
    last_run_at: Timestamp | None = Field(description="Start time of the last finished run.")
    concurrency_policy: str = Field(default="Forbid", description="(addition)")
    schedule: str | None = Field(default=None, description="Cron schedule (addition).")
    active_runs: list[str] = Field(
        default_factory=list, description="Runs not finished yet, oldest first (addition)."
    )
    namespace: str | None = Field(
        default=None, description="The connection's Kubernetes namespace (addition)."
    )
    ready: bool | None = Field(
        default=None,
        description="Whether the operator can run it (its Ready condition); null until the "
        "operator has looked at it (addition).",
    )
    ready_reason: str | None = Field(
        default=None, description="Why not, when ready is false (addition)."
    )


class ConnectionStatusOut(ConnectionOut):
    last_run_success: bool | None = None
    last_run_error: str | None = None
    last_run_duration_ms: int | None = None
    last_run_attempts: int | None = None
    last_run_id: str | None = Field(default=None, description="(addition)")
    last_run_source: Literal["runs", "archive", "connection"] | None = Field(
        default=None,
        description="Where the last-run fields come from: a PipelineRun in the cluster or the "
        "connection's own status, which the operator keeps (addition).",
    )
    last_success_at: Timestamp | None = Field(
        default=None,
        description="When the newest successful run ended, even if later runs failed "
        "(status.lastSuccessTime; addition).",
    )


class RunResultOut(BaseModel):
    """The result of one run (`POST /connections/{name}/run`, `result` of a single task)."""

    success: bool
    duration_ms: int
    rows_inserted: int
    error: str | None = None
    report: str | None = Field(
        default=None, description="Human-readable report; null unless include_report=true."
    )
    attempts: int | None = None
    records_reported: int | None = None
    progress_counts: dict[str, Any] | None = None
    run_id: str | None = None
    status: Literal["succeeded", "failed", "cancelled"] | None = Field(
        default=None, description="How the run ended (addition)."
    )
    report_truncated: bool | None = Field(default=None, description="(addition)")
    schema_changes: list[dict[str, Any]] | None = Field(
        default=None,
        description="What the run changed in the destination's schema: added tables and "
        "columns, type changes (addition).",
    )


class RunStartedOut(BaseModel):
    message: str
    task_id: str
    connection: str


class BatchStartedOut(BaseModel):
    message: str
    task_id: str
    connections: list[str]


class CancelOut(BaseModel):
    message: str
    task_id: str = Field(description="(addition)")
    kind: Literal["batch", "single"] = Field(description="(addition)")


class ProgressOut(BaseModel):
    stage: str | None = None
    records_extracted: int | None = None
    tables: dict[str, Any] | None = None
    rows_loaded: dict[str, Any] | None = Field(
        default=None, description="Rows per table counted in the destination (addition)."
    )
    jobs_done: int | None = None
    jobs_total: int | None = None
    updated_at: Timestamp | None = None


class BatchRunOut(BaseModel):
    connection: str
    run_id: str | None = None
    phase: str | None = None
    success: bool | None = None
    error: str | None = None


class RunOptionsOut(BaseModel):
    """What a run did differently from a plain sync (addition): its spec's options."""

    full_refresh: bool = Field(description="Its streams' tables were replaced, cursors reset.")
    streams: list[str] = Field(description="The streams it ran (empty: all).")
    since: Timestamp | None = Field(default=None, description="The backfill's start.")


class TaskStatusOut(BaseModel):
    """A task: a PipelineBatch (`kind: batch`) or a single PipelineRun (`kind: single`)."""

    task_id: str = Field(description="(addition)")
    kind: Literal["batch", "single"]
    status: TaskState
    connections: list[str]
    current: str | None = None
    completed: list[str]
    canceled: bool
    started_at: Timestamp | None
    finished_at: Timestamp | None = None
    active: bool
    connection: str | None = Field(default=None, description="Set when kind=single.")
    result: RunResultOut | None = Field(
        default=None, description="Set when kind=single and the run has finished."
    )
    error: str | None = Field(default=None, description="Set when kind=single and it failed.")
    phase: str | None = Field(
        default=None, description="Queued|Running|Succeeded|Failed|Cancelled (addition)."
    )
    trigger: str | None = Field(default=None, description="(addition)")
    batch: str | None = Field(default=None, description="Batch of a single run (addition).")
    attempts: int | None = Field(default=None, description="(addition)")
    progress: ProgressOut | None = Field(default=None, description="Live progress (addition).")
    runs: list[BatchRunOut] | None = Field(
        default=None, description="The runs of a batch (addition)."
    )
    options: RunOptionsOut | None = Field(
        default=None,
        description="Of a single run: a full refresh, some streams, a backfill (addition).",
    )


class HistoryEntryOut(BaseModel):
    run_id: str
    connection: str
    namespace: str | None = Field(default=None, description="(addition)")

    kind: Literal["single", "batch"] = Field(description="Part of a batch or not.")
    trigger: str | None = None
    batch: str | None = None
    status: Literal["succeeded", "failed", "cancelled"]
    phase: str
    success: bool
    started_at: Timestamp | None = None
    finished_at: Timestamp | None = None
    duration_ms: int | None = None
    rows_inserted: int | None = None
    records_reported: int | None = None
    attempts: int | None = None
    error: str | None = None
    options: RunOptionsOut | None = Field(
        default=None, description="A full refresh, some streams, a backfill (addition)."
    )


class HealthOut(BaseModel):
    status: str
    detail: str | None = None


class RunLogsOut(BaseModel):
    """`GET /runs/{run_id}/logs` (addition): the runner pod's log, else the run's report."""

    run_id: str
    connection: str
    phase: str = Field(description="Queued|Running|Succeeded|Failed|Cancelled.")
    source: Literal["pod", "stored", "report", "none"] = Field(
        description="`pod`: the log of the run's newest pod (its last attempt), read while the "
        "Job exists; `stored`: the runner's log kept with the run (head and tail) once the pod "
        "is gone; `report`: the run's report (no log was kept); `none`: nothing yet."
    )
    pod: str | None = Field(default=None, description="The pod the log was read from.")
    text: str = Field(description="The log or report text (empty for `none`).")
    truncated: bool = Field(
        default=False,
        description="The text was cut (the byte limit of a log, a long report; for `stored`, "
        "lines between the head and the tail, a line in the text says how many).",
    )


class SchemaColumnOut(BaseModel):
    name: str
    data_type: str | None = Field(default=None, description="dlt's type (text, bigint, …).")
    nullable: bool | None = None
    primary_key: bool | None = None


class SchemaTableOut(BaseModel):
    name: str
    parent: str | None = Field(
        default=None, description="For a child table (a nested list): its parent table."
    )
    write_disposition: str | None = None
    columns: list[SchemaColumnOut]


class SchemaChangeOut(BaseModel):
    kind: Literal["TableAdded", "ColumnAdded", "TypeChanged"]
    table: str
    column: str | None = None
    data_type: str | None = None
    previous_type: str | None = None


class RunSchemaChangesOut(BaseModel):
    run_id: str
    finished_at: Timestamp | None = None
    changes: list[SchemaChangeOut]


class ConnectionSchemaOut(BaseModel):
    """`GET /connections/{name}/schema` (addition): what the connection loads, as the newest
    successful run reported it (no pod, no destination connection needed)."""

    connection: str
    namespace: str
    schema_name: str = Field(description="The destination schema (dataset) it loads into.")
    source: Literal["run", "none"] = Field(
        description="`run`: from the run `run_id`; `none`: no successful run reported one yet."
    )
    run_id: str | None = None
    loaded_at: Timestamp | None = Field(default=None, description="When that run ended.")
    dlt_schema: str | None = Field(default=None, description="dlt's schema name.")
    version: int | None = Field(default=None, description="dlt's schema version.")
    truncated: bool = Field(
        default=False, description="Tables or columns beyond 200 tables / 500 columns omitted."
    )
    tables: list[SchemaTableOut] = Field(
        default_factory=list, description="Data tables, parents first (dlt's _dlt_* left out)."
    )
    schema_contract: dict[str, str] | None = Field(
        default=None,
        description="The connection's spec.schemaContract (tables, columns, data_type).",
    )
    recent_changes: list[RunSchemaChangesOut] = Field(
        default_factory=list,
        description="Schema changes of the connection's retained runs, newest first.",
    )
