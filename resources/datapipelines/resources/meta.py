"""What every resource shares: the base model, object metadata, conditions, Secret references.

Field names are the camelCase names stored in Kubernetes (``by_alias``); Python attributes are
snake_case. Models read what the apiserver already admitted, so unknown fields are ignored; the
CRD schemas in ``crds/`` are generated from these models (:mod:`.crdgen`).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from .times import format_time

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
SQL_IDENTIFIER = r"^[a-z_][a-z0-9_]{0,62}$"
SECRET_KEY = r"^[-._a-zA-Z0-9]+$"
QUANTITY = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|"
    r"([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)


class K8sModel(BaseModel):
    """Base of every model: camelCase aliases, unknown fields ignored."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    def to_k8s(self) -> dict[str, Any]:
        """The camelCase dict as stored in Kubernetes, without unset (None) fields."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


def cel(
    rule: str,
    message: str,
    *,
    field: str | None = None,
    reason: str = "FieldValueInvalid",
    message_expression: str | None = None,
) -> dict[str, Any]:
    """One ``x-kubernetes-validations`` entry (a CEL rule the apiserver enforces at admission).
    ``message_expression`` (CEL) names the offending value; ``message`` is its fallback."""
    entry: dict[str, Any] = {"rule": rule, "message": message, "reason": reason}
    if message_expression:
        entry["messageExpression"] = message_expression
    if field:
        entry["fieldPath"] = field
    return entry


def crd(**extra: Any) -> dict[str, Any]:
    """``json_schema_extra`` for a field: CRD-only schema keys (validations, list types, …)."""
    return extra


FREE_FORM = {"x-kubernetes-preserve-unknown-fields": True}


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(K8sModel):
    """A ``metav1.Condition``."""

    type: str = Field(
        max_length=316,
        pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
        r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
        description="Condition type, CamelCase.",
    )
    status: ConditionStatus = Field(
        description="Whether the condition holds: True, False or Unknown (not decided yet)."
    )
    reason: str = Field(
        min_length=1,
        max_length=1024,
        pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
        description="CamelCase reason.",
    )
    message: str = Field(
        default="",
        max_length=32768,
        description="Human-readable details of the current status (may be empty).",
    )
    last_transition_time: datetime = Field(
        description="When status last changed (a new reason or message alone does not move it)."
    )
    observed_generation: int | None = Field(
        default=None,
        ge=0,
        description="The metadata.generation of the object this condition was set from.",
        json_schema_extra=crd(format="int64"),
    )


CONDITIONS = crd(
    **{
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
        "maxItems": 16,
        "description": "Current state, after the Kubernetes API conventions (metav1.Condition).",
    }
)


def find_condition(conditions: list[Condition], type_: str) -> Condition | None:
    return next((c for c in conditions if c.type == type_), None)


def with_condition(
    conditions: list[Condition],
    *,
    type_: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    now: datetime,
    observed_generation: int | None = None,
) -> list[Condition]:
    """A new list with ``type_`` set; ``lastTransitionTime`` moves only when the status does."""
    old = find_condition(conditions, type_)
    transition = now if old is None or old.status != status else old.last_transition_time
    new = Condition(
        type=type_,
        status=status,
        reason=reason,
        message=message[:32768],
        last_transition_time=transition,
        observed_generation=observed_generation,
    )
    return [c for c in conditions if c.type != type_] + [new]


def conditions_json(conditions: list[Condition]) -> list[dict[str, Any]]:
    """Conditions as the apiserver stores them (second-precision ``Z`` times)."""
    out = []
    for c in conditions:
        item = c.to_k8s()
        item["lastTransitionTime"] = format_time(c.last_transition_time)
        out.append(item)
    return out


class SecretRef(K8sModel):
    """A reference ``{name, key}`` to a Secret in the same namespace; never the value."""

    name: str = Field(
        max_length=253, pattern=DNS_SUBDOMAIN, description="Secret name in the same namespace."
    )
    key: str = Field(max_length=253, pattern=SECRET_KEY, description="Key inside the Secret.")


class OwnerReference(K8sModel):
    api_version: str = ""
    kind: str = ""
    name: str = ""
    uid: str = ""
    controller: bool | None = None


class ObjectMeta(K8sModel):
    """The parts of ``metav1.ObjectMeta`` the project reads."""

    name: str = ""
    namespace: str = ""
    uid: str = ""
    resource_version: str = ""
    generation: int = 0
    creation_timestamp: datetime | None = None
    deletion_timestamp: datetime | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    owner_references: list[OwnerReference] = Field(default_factory=list)

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    def rv(self) -> int:
        """resourceVersion as an integer (etcd revisions); 0 when unknown."""
        try:
            return int(self.resource_version)
        except ValueError:
            return 0


def validation_problems(exc: ValidationError, root: str = "spec") -> list[tuple[str, str]]:
    """``(field path, message)`` per error of a model validation, paths in camelCase from
    ``root`` (e.g. ``spec.source.sqlDatabase``), pydantic's "Value error, " prefix dropped."""
    out = []
    for err in exc.errors():
        path = ".".join([root, *(str(p) for p in err["loc"])])
        out.append((path, str(err["msg"]).removeprefix("Value error, ")))
    return out
