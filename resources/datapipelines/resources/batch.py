"""PipelineBatch: runs a list of connections one after another (``/run_selected``)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field

from .meta import CONDITIONS, DNS_LABEL, Condition, K8sModel, ObjectMeta, cel, crd
from .run import RunPhase


class BatchState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    FINISHED = "finished"
    CANCELLED = "cancelled"

    @property
    def done(self) -> bool:
        return self in (BatchState.FINISHED, BatchState.CANCELLED)


CONDITION_COMPLETE = "Complete"


class BatchSpec(K8sModel):
    """Desired state of a batch."""

    connections: list[str] = Field(
        max_length=5000,
        description="Connections to run, one after another, in this order. Immutable.",
        json_schema_extra=crd(
            **{
                "x-kubernetes-list-type": "set",
                "items": {"type": "string", "minLength": 1, "maxLength": 51, "pattern": DNS_LABEL},
                "x-kubernetes-validations": [
                    cel(
                        "self == oldSelf",
                        "spec.connections is immutable",
                        reason="FieldValueForbidden",
                    )
                ],
            }
        ),
    )
    cancel_requested: bool = Field(
        default=False,
        description="Set true to cancel the current run and start no more; false → true only.",
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


class BatchRunRef(K8sModel):
    """The run the batch made for one of its connections."""

    connection: str = Field(description="The connection (an entry of spec.connections).")
    run_name: str = Field(description="The PipelineRun the batch created for it.")
    phase: RunPhase | None = Field(
        default=None,
        description="The run's phase as last seen (unset until it has one); a run deleted "
        "before it ended counts as Failed.",
    )


class BatchStatus(K8sModel):
    """Observed state of a batch (written by the operator only)."""

    state: BatchState | None = Field(
        default=None,
        description="running, finished (every connection's run ended) or cancelled "
        "(spec.cancelRequested, no run left going); unset or queued until the batch starts.",
    )
    current: str | None = Field(default=None, description="Connection being run.")
    completed: list[str] = Field(
        default_factory=list, description="Connections whose run ended (any outcome), in order."
    )
    runs: list[BatchRunRef] = Field(
        default_factory=list,
        description="The run made for each connection started so far, in spec.connections order.",
    )
    started_at: datetime | None = Field(default=None, description="When the batch started.")
    finished_at: datetime | None = Field(default=None, description="When the batch ended.")
    conditions: list[Condition] = Field(default_factory=list, json_schema_extra=CONDITIONS)
    observed_generation: int | None = Field(
        default=None,
        description="The metadata.generation the operator last reconciled.",
        json_schema_extra=crd(format="int64"),
    )


class PipelineBatch(K8sModel):
    """PipelineBatch: runs a list of connections one after another (/run_selected)."""

    api_version: str = ""
    kind: str = ""
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: BatchSpec
    status: BatchStatus = Field(default_factory=BatchStatus)

    @property
    def state(self) -> BatchState:
        return self.status.state or BatchState.QUEUED
