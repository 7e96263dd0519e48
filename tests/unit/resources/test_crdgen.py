"""The CRDs are generated from the models (datapipelines.resources.crdgen): the committed files
are the generator's output, the chart ships the same files, and every field, type, enum,
default, bound and required-ness of the models is in the schema, in both directions."""

from __future__ import annotations

import copy
import functools
import types
import typing
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from datapipelines.resources import crdgen
from datapipelines.resources.batch import BatchSpec, BatchStatus
from datapipelines.resources.connection import (
    ConnectionSpec,
    ConnectionStatus,
    PostgresDestination,
    SqlDatabaseSource,
)
from datapipelines.resources.run import RunSpec, RunStatus

ROOT = Path(__file__).resolve().parents[3]
CRDS = ROOT / "crds"
CHART_CRDS = ROOT / "deploy" / "helm" / "datapipelines" / "files" / "crds"

MODELS = {
    "pipelineconnections": (ConnectionSpec, ConnectionStatus),
    "pipelineruns": (RunSpec, RunStatus),
    "pipelinebatches": (BatchSpec, BatchStatus),
}


@functools.cache
def _load(plural: str) -> dict[str, Any]:
    crd = yaml.safe_load((CRDS / f"{plural}.yaml").read_text())
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def schema(plural: str) -> dict[str, Any]:
    return copy.deepcopy(_load(plural))


def node(plural: str, path: str) -> dict[str, Any]:
    """The schema node at a dotted path of properties (``spec.source.sqlDatabase``)."""
    current = schema(plural)
    for part in path.split("."):
        current = current["properties"][part]
    return current


# --------------------------------------------------------------------------- the files


def test_the_committed_crds_are_the_generators_output() -> None:
    generated = crdgen.files()
    assert sorted(generated) == sorted(p.name for p in CRDS.glob("*.yaml"))
    for name, text in generated.items():
        assert (CRDS / name).read_text() == text, f"crds/{name} is stale: run make crds"


def test_the_check_mode_agrees(capsys: pytest.CaptureFixture[str]) -> None:
    assert crdgen.main(["--check", str(CRDS)]) == 0
    assert capsys.readouterr().err == ""


def test_the_chart_ships_the_same_crds() -> None:
    for path in sorted(CRDS.glob("*.yaml")):
        chart = CHART_CRDS / path.name
        assert chart.read_text() == path.read_text(), f"{chart} differs from {path}"
    assert sorted(p.name for p in CHART_CRDS.glob("*.yaml")) == sorted(
        p.name for p in CRDS.glob("*.yaml")
    )


# --------------------------------------------------------------------------- named fields


def test_retries_bounds_and_default() -> None:
    retries = node("pipelineconnections", "spec.retries")
    assert (retries["type"], retries["minimum"], retries["maximum"]) == ("integer", 0, 10)
    assert retries["default"] == ConnectionSpec.model_fields["retries"].default == 2


def test_postgres_password_secret_is_required() -> None:
    pg = node("pipelineconnections", "spec.destination.postgres")
    assert "passwordSecretRef" in pg["required"]
    assert PostgresDestination.model_fields["password_secret_ref"].is_required()
    ref = pg["properties"]["passwordSecretRef"]
    assert set(ref["required"]) == {"name", "key"}


def test_fields_the_runner_reads_are_declared() -> None:
    sql = node("pipelineconnections", "spec.source.sqlDatabase")
    chunk = sql["properties"]["chunkSize"]
    assert (chunk["type"], chunk["default"]) == ("integer", 50_000)
    assert (chunk["minimum"], chunk["maximum"]) == (1, 1_000_000)
    assert SqlDatabaseSource.model_fields["chunk_size"].default == 50_000
    pg = node("pipelineconnections", "spec.destination.postgres")
    assert pg["properties"]["connectTimeoutSeconds"]["default"] == 10


def test_enums_and_defaults() -> None:
    spec = node("pipelineconnections", "spec")["properties"]
    assert spec["concurrencyPolicy"]["enum"] == ["Forbid", "Queue", "Replace"]
    assert spec["concurrencyPolicy"]["default"] == "Forbid"
    assert spec["type"]["enum"] == [
        "rest_api",
        "sql_database",
        "filesystem",
        "trello",
        "hubspot",
        "intercom",
        "calendly",
        "pandadoc",
        "wassenger",
        "fireflies",
        "xero",
    ]
    assert spec["destination"]["default"] == {"type": "duckdb"}
    assert node("pipelineruns", "status.phase")["enum"] == [
        "Queued",
        "Running",
        "Succeeded",
        "Failed",
        "Cancelled",
    ]
    assert node("pipelinebatches", "status.state")["enum"] == [
        "queued",
        "running",
        "finished",
        "cancelled",
    ]


def test_cel_rules_come_from_the_models() -> None:
    rules = node("pipelineconnections", "spec")["x-kubernetes-validations"]
    assert any("spec.timeZone needs spec.schedule" in r["message"] for r in rules)
    run_spec = node("pipelineruns", "spec")
    assert any(
        r["rule"] == "self == oldSelf"
        for r in run_spec["properties"]["connectionName"]["x-kubernetes-validations"]
    )
    names = schema("pipelineruns")["x-kubernetes-validations"]
    assert any("<= 57" in r["rule"] for r in names)


# --------------------------------------------------------------------------- model ↔ schema


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """(the type without ``None``, whether None was allowed)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        nullable = len(args) < len(typing.get_args(annotation))
        return (args[0] if len(args) == 1 else typing.Union[tuple(args)]), nullable  # noqa: UP007
    return annotation, False


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _compare(tp: Any, sch: dict[str, Any], path: str, errors: list[str]) -> None:
    """The schema node ``sch`` describes the (unwrapped) type ``tp``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if _is_model(tp):
        _compare_model(tp, sch, path, errors)
    elif isinstance(tp, type) and issubclass(tp, Enum):
        if sch.get("enum") != [m.value for m in tp]:
            errors.append(f"{path}: enum {sch.get('enum')} != {[m.value for m in tp]}")
    elif origin in (typing.Union, types.UnionType):
        if sorted(a.__name__ for a in args) == ["int", "str"]:
            if not sch.get("x-kubernetes-int-or-string"):
                errors.append(f"{path}: int | str is not int-or-string")
        else:
            errors.append(f"{path}: union {args} has no structural schema")
    elif origin is list:
        if sch.get("type") != "array":
            errors.append(f"{path}: list but type {sch.get('type')}")
        elif args and (_is_model(args[0]) or typing.get_origin(args[0]) is not None):
            _compare(args[0], sch.get("items", {}), f"{path}[]", errors)
    elif origin is dict:
        if sch.get("type") != "object":
            errors.append(f"{path}: dict but type {sch.get('type')}")
        elif args and args[1] is not Any:
            _compare(_unwrap(args[1])[0], sch.get("additionalProperties", {}), path + "{}", errors)
    else:
        expected = {int: "integer", str: "string", bool: "boolean", datetime: "string"}.get(tp)
        if expected is not None and sch.get("type") != expected:
            errors.append(f"{path}: {tp.__name__} but type {sch.get('type')}")
        if tp is datetime and sch.get("format") != "date-time":
            errors.append(f"{path}: datetime without format date-time")


def _compare_model(model: type[BaseModel], sch: dict[str, Any], path: str, errors: list) -> None:
    fields = {f.alias or name: f for name, f in model.model_fields.items()}
    props = sch.get("properties") or {}
    for alias in sorted(fields.keys() - props.keys()):
        errors.append(f"{path}.{alias}: in {model.__name__}, not in the CRD")
    for key in sorted(props.keys() - fields.keys()):
        errors.append(f"{path}.{key}: in the CRD, not in {model.__name__}")
    required = set(sch.get("required") or [])
    for alias, field in fields.items():
        where = f"{path}.{alias}"
        if field.is_required() != (alias in required):
            errors.append(f"{where}: required {field.is_required()} in the model")
        if alias not in props:
            continue
        sub = props[alias]
        default = field.default
        if default is not PydanticUndefined and default is not None:
            expected = default.value if isinstance(default, Enum) else default
            if sub.get("default") != expected:
                errors.append(f"{where}: default {sub.get('default')!r} != {expected!r}")
        elif default is None and "default" in sub:
            errors.append(f"{where}: CRD default {sub['default']!r}, the model has none")
        for meta in field.metadata:
            for attr, key in (
                ("ge", "minimum"),
                ("le", "maximum"),
                ("min_length", "minLength"),
                ("max_length", "maxLength"),
                ("pattern", "pattern"),
            ):
                value = getattr(meta, attr, None)
                if value is None:
                    continue
                bound_key = key
                if attr in ("min_length", "max_length") and sub.get("type") == "array":
                    bound_key = {"minLength": "minItems", "maxLength": "maxItems"}[key]
                if sub.get(bound_key) != value:
                    errors.append(f"{where}: {bound_key} {sub.get(bound_key)!r} != {value!r}")
        tp, _ = _unwrap(field.annotation)
        _compare(tp, sub, where, errors)


@pytest.mark.parametrize("plural", sorted(MODELS))
def test_every_model_field_is_in_the_crd_and_back(plural: str) -> None:
    spec_model, status_model = MODELS[plural]
    errors: list[str] = []
    _compare_model(spec_model, node(plural, "spec"), "spec", errors)
    _compare_model(status_model, node(plural, "status"), "status", errors)
    assert errors == []
    assert "spec" in schema(plural)["required"]


def test_the_comparison_sees_a_difference() -> None:
    # the checker itself: a field, a default, a bound and required-ness that differ are found
    sch = node("pipelineconnections", "spec")
    broken = yaml.safe_load(yaml.safe_dump(sch))
    del broken["properties"]["historyLimit"]
    broken["properties"]["retries"]["default"] = 3
    broken["properties"]["timeoutSeconds"]["maximum"] = 7
    broken["required"].remove("schemaName")
    broken["properties"]["extra"] = {"type": "string"}
    pg = broken["properties"]["destination"]["properties"]["postgres"]
    pg["required"].remove("passwordSecretRef")
    errors: list[str] = []
    _compare_model(ConnectionSpec, broken, "spec", errors)
    text = "\n".join(errors)
    for expected in (
        "spec.historyLimit: in ConnectionSpec, not in the CRD",
        "spec.extra: in the CRD, not in ConnectionSpec",
        "spec.retries: default 3 != 2",
        "spec.timeoutSeconds: maximum 7 != 86400",
        "spec.schemaName: required True",
        "spec.destination.postgres.passwordSecretRef: required True",
    ):
        assert expected in text, (expected, text)


def test_only_keywords_a_structural_schema_allows() -> None:
    """The apiserver refuses a CRD whose schema uses keywords outside its structural subset
    (`const` from a Literal, `$ref`, `anyOf` of types …): server-side apply fails with "field
    not declared in schema". Caught here, not at the first install."""
    refused = {"const", "$ref", "$defs", "oneOf", "title", "examples"}

    def walk(node: object, path: str) -> list[str]:
        found: list[str] = []
        if isinstance(node, dict):
            for key, value in node.items():
                if key in refused:
                    found.append(f"{path}.{key}")
                if key == "properties" and isinstance(value, dict):
                    for name, child in value.items():
                        found += walk(child, f"{path}.{name}")
                elif key in ("items", "additionalProperties", "not"):
                    found += walk(value, f"{path}.{key}")
                elif key in ("anyOf", "allOf") and isinstance(value, list):
                    for i, child in enumerate(value):
                        found += walk(child, f"{path}.{key}[{i}]")
        return found

    for path in sorted((ROOT / "crds").glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        for version in crd["spec"]["versions"]:
            problems = walk(version["schema"]["openAPIV3Schema"], version["name"])
            assert not problems, f"{path.name}: {problems}"
