"""PipelineRun: one run of one PipelineConnection, executed as a Job.

Who writes what (docs/ownership.md): the API (or kubectl, a schedule, a batch) creates the run
and may set ``spec.cancelRequested``; the runner writes only ``status.progress`` and
``status.runnerResult`` of its own run (an admission policy enforces it); the operator derives
everything else in ``status``.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum

from pydantic import Field, PrivateAttr

from .meta import (
    CONDITIONS,
    DNS_LABEL,
    Condition,
    ConditionStatus,
    K8sModel,
    ObjectMeta,
    cel,
    crd,
    find_condition,
)
from .times import parse_time

INT64 = crd(format="int64")


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


TERMINAL_PHASES = frozenset({RunPhase.SUCCEEDED, RunPhase.FAILED, RunPhase.CANCELLED})

#: ``status`` of the run's ``Succeeded`` condition for each phase (Tekton-style).
PHASE_CONDITION_STATUS: dict[RunPhase, ConditionStatus] = {
    RunPhase.QUEUED: ConditionStatus.UNKNOWN,
    RunPhase.RUNNING: ConditionStatus.UNKNOWN,
    RunPhase.SUCCEEDED: ConditionStatus.TRUE,
    RunPhase.FAILED: ConditionStatus.FALSE,
    RunPhase.CANCELLED: ConditionStatus.FALSE,
}

CONDITION_SUCCEEDED = "Succeeded"


def is_terminal(phase: str | RunPhase | None) -> bool:
    """True for Succeeded, Failed, Cancelled; False for Queued, Running and no phase yet."""
    return phase in TERMINAL_PHASES


def _immutable(what: str) -> dict[str, list[dict[str, str]]]:
    return {
        "x-kubernetes-validations": [
            cel("self == oldSelf", f"spec.{what} is immutable", reason="FieldValueForbidden")
        ]
    }


class RunSpec(K8sModel):
    """Desired state of a run."""

    model_config = {
        "json_schema_extra": crd(
            **{
                "x-kubernetes-validations": [
                    cel(
                        "self.trigger != 'schedule' || has(self.scheduledTime)",
                        "spec.scheduledTime is required for trigger schedule",
                        field=".scheduledTime",
                        reason="FieldValueRequired",
                    ),
                    cel(
                        "has(self.scheduledTime) == has(oldSelf.scheduledTime)",
                        "spec.scheduledTime is immutable",
                        field=".scheduledTime",
                        reason="FieldValueForbidden",
                    ),
                ]
            }
        )
    }

    connection_name: str = Field(
        min_length=1,
        max_length=51,
        pattern=DNS_LABEL,
        description="The PipelineConnection to run (same namespace). Immutable.",
        json_schema_extra=crd(**_immutable("connectionName")),
    )
    trigger: Trigger = Field(
        default=Trigger.MANUAL,
        description="Who asked for the run. Immutable.",
        json_schema_extra=crd(**_immutable("trigger")),
    )
    cancel_requested: bool = Field(
        default=False,
        description="Set true to cancel; can only go from false to true.",
        json_schema_extra=crd(
            **{
                "x-kubernetes-validations": [
                    cel(
                        "self || !oldSelf",
                        "spec.cancelRequested cannot go from true back to false",
                        reason="FieldValueForbidden",
                    )
                ]
            }
        ),
    )
    scheduled_time: datetime | None = Field(
        default=None,
        description="The schedule tick of a run with trigger schedule. Immutable.",
        json_schema_extra=crd(**_immutable("scheduledTime")),
    )
    full_refresh: bool = Field(
        default=False,
        description="Re-load from scratch: the run's streams start from no cursor and their "
        "tables are replaced by what it loads (swapped in when the load completes: a refresh "
        "that fails leaves the old data and state). Destructive. Immutable.",
        json_schema_extra=crd(**_immutable("fullRefresh")),
    )
    streams: list[str] | None = Field(
        default=None,
        max_length=100,
        description="Run only these streams (resources) of the connection, e.g. to refresh one; "
        "the others' rows and state stay as they are. Default: every stream. Immutable.",
        json_schema_extra=crd(
            **{
                **_immutable("streams"),
                "x-kubernetes-list-type": "set",
                "items": {"type": "string", "minLength": 1, "maxLength": 128},
            }
        ),
    )
    since: datetime | None = Field(
        default=None,
        description="Backfill: incremental streams start from this time for this run (their "
        "stored cursor is set aside; rows since then are loaded again and merged). Immutable.",
        json_schema_extra=crd(**_immutable("since")),
    )

    @property
    def options(self) -> RunOptions | None:
        """The run's options (full refresh, streams, since), None for a plain run."""
        if not (self.full_refresh or self.streams or self.since):
            return None
        return RunOptions(
            full_refresh=self.full_refresh, streams=self.streams or [], since=self.since
        )


class RunOptions(K8sModel):
    """What a run does differently from a plain sync (DATAPIPELINES_RUN_OPTIONS of its pod)."""

    full_refresh: bool = False
    streams: list[str] = Field(default_factory=list)
    since: datetime | None = None

    def describe(self) -> str:
        """One line for the report, the CLI and the console."""
        parts = []
        if self.full_refresh:
            parts.append("full refresh")
        if self.streams:
            parts.append("streams " + ", ".join(self.streams))
        if self.since is not None:
            parts.append(f"since {self.since.isoformat().replace('+00:00', 'Z')}")
        return "; ".join(parts) or "plain run"


class ProgressStage(StrEnum):
    EXTRACT = "extract"
    NORMALIZE = "normalize"
    LOAD = "load"
    DONE = "done"


class RunProgress(K8sModel):
    """Live progress, written by the runner while it runs."""

    stage: ProgressStage | None = Field(
        default=None,
        description="The dlt step under way: extract, normalize, load, or done once the runner "
        "has finished.",
    )
    records_extracted: int | None = Field(
        default=None,
        description="Records read from the source so far (all tables).",
        json_schema_extra=INT64,
    )
    tables: dict[str, int] | None = Field(
        default=None, description="Rows per table seen in the current stage."
    )
    rows_loaded: dict[str, int] | None = Field(
        default=None, description="Rows per table counted in the destination (after load)."
    )
    jobs_done: int | None = Field(
        default=None,
        description="dlt load jobs (files) finished so far; set once the load step knows "
        "jobsTotal.",
    )
    jobs_total: int | None = Field(
        default=None, description="dlt load jobs (files) of the load step."
    )
    attempt: int | None = Field(default=None, description="The pod attempt reporting.")
    updated_at: datetime | None = Field(
        default=None, description="When the runner last wrote this progress."
    )


class SchemaChangeKind(StrEnum):
    TABLE_ADDED = "TableAdded"
    COLUMN_ADDED = "ColumnAdded"
    TYPE_CHANGED = "TypeChanged"


class SchemaChange(K8sModel):
    """One change a run made to the destination's schema."""

    kind: SchemaChangeKind = Field(
        description="TableAdded (a new table; its columns are in the report), ColumnAdded or "
        "TypeChanged."
    )
    table: str = Field(max_length=256, description="The destination table.")
    column: str | None = Field(
        default=None,
        max_length=256,
        description="The column added or changed (unset for TableAdded).",
    )
    data_type: str | None = Field(
        default=None, max_length=64, description="The column's dlt data type after the run."
    )
    previous_type: str | None = Field(
        default=None,
        max_length=64,
        description="The column's dlt data type before the run (TypeChanged only).",
    )


#: Bounds of a run's loaded schema (status.runnerResult.loadedSchema): ~100 KiB at most.
MAX_SCHEMA_TABLES = 200
MAX_SCHEMA_COLUMNS = 500


class ResultBase(K8sModel):
    """The fields of a run's outcome shared by the runner's report and the operator's result."""

    success: bool = Field(description="Whether the sync succeeded.")
    duration_ms: int | None = Field(
        default=None,
        description="How long the run took, in milliseconds.",
        json_schema_extra=INT64,
    )
    rows_inserted: int | None = Field(
        default=None,
        description="Rows this run loaded, counted in the destination (nested tables included).",
        json_schema_extra=INT64,
    )
    records_reported: int | None = Field(
        default=None,
        description="Records read from the source (extract step).",
        json_schema_extra=INT64,
    )
    progress_counts: dict[str, dict[str, int]] | None = Field(
        default=None, description="Counts per stage and table, e.g. {extract: {items: 1000}}."
    )
    error: str | None = Field(
        default=None, max_length=32768, description="Why the run failed (unset when it succeeded)."
    )
    report: str | None = Field(
        default=None,
        max_length=65536,
        description="The run's human-readable summary (in status.result only when "
        "status.runnerResult has none).",
    )
    report_truncated: bool | None = Field(
        default=None, description="True when report was cut to its size limit."
    )
    load_id: str | None = Field(
        default=None,
        max_length=256,
        description="dlt load id of the last package loaded (the _dlt_load_id of its rows).",
    )
    schema_changes: list[SchemaChange] | None = Field(
        default=None,
        max_length=200,
        description="What the run changed in the destination's schema (at most 200 changes).",
    )


class LoadedColumn(K8sModel):
    """One column of a destination table, as dlt's schema has it."""

    name: str = Field(max_length=256, description="The column's name in the destination.")
    data_type: str | None = Field(
        default=None, max_length=64, description="dlt's data type (text, bigint, timestamp, …)."
    )
    nullable: bool | None = Field(default=None, description="Whether it may hold nulls.")
    primary_key: bool | None = Field(default=None, description="Part of the primary key.")


class LoadedTable(K8sModel):
    """One destination table the connection loads."""

    name: str = Field(max_length=256, description="The table's name in the destination.")
    parent: str | None = Field(
        default=None,
        max_length=256,
        description="For a child table (a nested list), the table its rows belong to.",
    )
    write_disposition: str | None = Field(
        default=None, max_length=32, description="append, replace or merge."
    )
    columns: list[LoadedColumn] = Field(
        default_factory=list, max_length=MAX_SCHEMA_COLUMNS, description="Its columns, in order."
    )


class LoadedSchema(K8sModel):
    """The destination schema after a run: what `GET /connections/{name}/schema` answers."""

    name: str | None = Field(default=None, max_length=256, description="dlt's schema name.")
    version: int | None = Field(
        default=None, description="dlt's schema version.", json_schema_extra=INT64
    )
    tables: list[LoadedTable] = Field(
        default_factory=list,
        max_length=MAX_SCHEMA_TABLES,
        description="The data tables (dlt's own _dlt_* tables left out), parents first.",
    )
    truncated: bool | None = Field(
        default=None,
        description="True when tables or columns beyond the bounds were left out.",
    )


#: The largest kept log of one run in etcd (status.runnerResult.log.data, gzip + base64).
MAX_KEPT_LOG_BYTES = 48 * 1024
#: The most text a kept log decodes to (the runner keeps 32 KiB + 160 KiB of lines).
MAX_KEPT_LOG_TEXT = 256 * 1024


class LogEncoding(StrEnum):
    GZIP_BASE64 = "gzip+base64"


class KeptLog(K8sModel):
    """The runner's own log lines, kept with the run after its pod is gone: the head and the
    tail (what was cut between them is counted), gzip-compressed and base64-encoded."""

    encoding: LogEncoding = Field(
        default=LogEncoding.GZIP_BASE64, description="How data is encoded."
    )
    data: str = Field(
        max_length=MAX_KEPT_LOG_BYTES,
        description="The kept lines (UTF-8 text, one log line each), gzip + base64.",
    )
    lines: int = Field(ge=0, description="Lines the runner logged.", json_schema_extra=INT64)
    bytes: int = Field(ge=0, description="Bytes the runner logged.", json_schema_extra=INT64)
    cut_lines: int = Field(
        default=0,
        ge=0,
        description="Lines left out between the head and the tail (0: the whole log).",
        json_schema_extra=INT64,
    )

    def text(self) -> str:
        """The kept lines, with a line saying how many were cut where they were. The runner
        (code a connection's author may influence) wrote it: it is decoded to at most
        MAX_KEPT_LOG_TEXT bytes whatever it claims (no decompression bomb), and a bad one
        reads as a line saying so."""
        import base64
        import binascii
        import zlib

        try:
            packed = base64.b64decode(self.data, validate=True)
            inflate = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)  # gzip
            raw = inflate.decompress(packed, MAX_KEPT_LOG_TEXT)
        except (binascii.Error, ValueError, zlib.error):
            return "[the kept log is not gzip+base64: not shown]\n"
        text = raw.decode("utf-8", errors="replace")
        if inflate.unconsumed_tail:
            text += "\n[the kept log is longer than any runner writes: cut here]\n"
        return text


class RunnerResult(ResultBase):
    """The runner's own final report (written by the runner of this run only)."""

    pod_name: str | None = Field(
        default=None, max_length=253, description="The pod that wrote this report."
    )
    loaded_schema: LoadedSchema | None = Field(
        default=None,
        description="The destination's tables and columns after a successful load (the API "
        "reads it on demand for GET /connections/{name}/schema).",
    )
    log: KeptLog | None = Field(
        default=None,
        description="The runner's log lines (head and tail, compressed), readable with "
        "GET /runs/{run_id}/logs after the pod is gone.",
    )


class ResultSource(StrEnum):
    RUNNER = "Runner"
    TERMINATION_MESSAGE = "TerminationMessage"
    OPERATOR = "Operator"


class RunResult(ResultBase):
    """The run's outcome as the operator derived it. ``report`` is set only when the runner's
    own report (``status.runnerResult``) is missing; readers take that one first."""

    source: ResultSource | None = Field(default=None, description="Where the counts come from.")


class RunStatus(K8sModel):
    """Observed state of a run."""

    phase: RunPhase | None = Field(default=None, description="Mirror of the condition's reason.")
    reason: str | None = Field(
        default=None,
        max_length=64,
        description="Why the run ended, in one CamelCase word (set once it ended): Completed, "
        "Cancelled, or the cause of a failure — BackoffLimitExceeded, DeadlineExceeded, "
        "OOMKilled, ImagePullBackOff, SecretNotFound, PodNotStarted, JobDeleted, "
        "BadCredentials, SourceHTTPError, SourceUnreachable, DestinationUnreachable, "
        "ContractViolation, InvalidConfiguration, SyncFailed, …",
    )
    conditions: list[Condition] = Field(default_factory=list, json_schema_extra=CONDITIONS)
    sequence: int | None = Field(
        default=None,
        description="Queue order: the etcd revision at which the operator first saw the run.",
        json_schema_extra=INT64,
    )
    queued_at: datetime | None = Field(default=None, description="When the run was requested.")
    start_time: datetime | None = Field(default=None, description="When its Job was created.")
    completion_time: datetime | None = Field(default=None, description="When it ended.")
    job_name: str | None = Field(
        default=None, max_length=63, description="The run's Job (same namespace)."
    )
    job_uid: str | None = Field(
        default=None,
        max_length=64,
        description="UID of the run's Job: its pods are recognised by it, even once the Job "
        "is gone.",
    )
    attempts: int | None = Field(default=None, ge=0, description="Pods tried so far.")
    progress: RunProgress | None = None
    runner_result: RunnerResult | None = None
    result: RunResult | None = None
    observed_generation: int | None = Field(
        default=None,
        description="The metadata.generation the operator last reconciled.",
        json_schema_extra=INT64,
    )


class PipelineRun(K8sModel):
    """PipelineRun: one run of one PipelineConnection, executed as a Job."""

    api_version: str = ""
    kind: str = ""
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: RunSpec
    status: RunStatus = Field(default_factory=RunStatus)
    #: Why ``status.runnerResult`` was dropped when the run was read (the runner, or whoever
    #: holds its pod's token, wrote something that is not a report); None when it was fine.
    _runner_report_problem: str | None = PrivateAttr(default=None)

    @property
    def runner_report_problem(self) -> str | None:
        return self._runner_report_problem

    @runner_report_problem.setter
    def runner_report_problem(self, problem: str | None) -> None:
        self._runner_report_problem = problem

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def namespace(self) -> str:
        return self.metadata.namespace

    @property
    def phase(self) -> RunPhase | None:
        """``status.phase``, else the Succeeded condition's reason."""
        if self.status.phase is not None:
            return self.status.phase
        cond = find_condition(self.status.conditions, CONDITION_SUCCEEDED)
        if cond is not None and cond.reason in RunPhase._value2member_map_:
            return RunPhase(cond.reason)
        return None

    @property
    def terminal(self) -> bool:
        return is_terminal(self.phase)

    @property
    def condition_message(self) -> str:
        cond = find_condition(self.status.conditions, CONDITION_SUCCEEDED)
        return cond.message if cond else ""

    def report(self) -> str | None:
        """The runner's report, else the one the operator kept."""
        for res in (self.status.runner_result, self.status.result):
            if res is not None and res.report:
                return res.report
        return None

    def order(self) -> tuple[datetime, int, str]:
        """Queue order: creation time, then the monotonic sequence, then the name."""
        created = self.metadata.creation_timestamp or parse_time("1970-01-01T00:00:00Z")
        assert created is not None
        seq = self.status.sequence if self.status.sequence is not None else self.metadata.rv()
        return (created, seq, self.metadata.name)


_LEADING_REASON = re.compile(r"^([A-Z][A-Za-z0-9]{2,63}):")
#: The runner's error kinds (`kind: message`, runner errors.py) as reasons.
RUNNER_KIND_REASONS = {
    "bad credentials": "BadCredentials",
    "source unreachable": "SourceUnreachable",
    "destination unreachable": "DestinationUnreachable",
    "destination refused": "DestinationRefused",
    "destination conflict": "DestinationConflict",
    "contract violation": "ContractViolation",
    "bad config": "InvalidConfiguration",
    "invalid connection spec": "InvalidConfiguration",
    "sync failed": "SyncFailed",
    "cancelled": "Cancelled",
}
#: What a pod that could not start says, most specific first.
_POD_CAUSES = (
    ("OOMKilled", "OOMKilled"),
    ("ImagePullBackOff", "ImagePullBackOff"),
    ("ErrImagePull", "ImagePullBackOff"),
    ("ErrImageNeverPull", "ImagePullBackOff"),
    ("InvalidImageName", "ImagePullBackOff"),
    ("CreateContainerConfigError", "CreateContainerConfigError"),
    ("Unschedulable", "Unschedulable"),
    ("Evicted", "Evicted"),
)
_GENERIC_JOB_REASONS = frozenset({"BackoffLimitExceeded", "JobFailed", "PodFailurePolicy"})


def runner_error_reason(error: str | None) -> str | None:
    """The reason of a runner error (`bad credentials: …` → BadCredentials), None if unknown."""
    if not error:
        return None
    kind = error.split(":", 1)[0].strip().lower()
    if kind.startswith("source http"):
        return "SourceHTTPError"
    return RUNNER_KIND_REASONS.get(kind)


def end_reason(phase: RunPhase, message: str, error: str | None = None) -> str | None:
    """`status.reason` of a run that ended in `phase` with its condition `message` and its
    result's `error` (pure): the most specific cause found, None while it has not ended."""
    if phase is RunPhase.SUCCEEDED:
        return "Completed"
    if phase is RunPhase.CANCELLED:
        return "Cancelled"
    if phase is not RunPhase.FAILED:
        return None
    text = f"{message} {error or ''}"
    if 'secret "' in text.lower() and "not found" in text.lower():
        return "SecretNotFound"
    leading = _LEADING_REASON.match(message or "")
    token = leading.group(1) if leading else None
    if token is None or token in _GENERIC_JOB_REASONS or token == "PodNotStarted":
        for needle, reason in _POD_CAUSES:
            if needle in text:
                return reason
    if token is None or token in _GENERIC_JOB_REASONS:
        from_runner = runner_error_reason(error) or runner_error_reason(
            message.split("runner: ", 1)[1] if "runner: " in message else None
        )
        if from_runner is not None:
            return from_runner
    return token or runner_error_reason(message) or "Failed"
