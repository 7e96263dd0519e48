"""The CRDs of ``crds/``, generated from the models: ``python -m datapipelines.resources.crdgen``.

The models are the one source: each field's type, enum, default, bounds, pattern and
required-ness come from pydantic's JSON schema, turned into a structural OpenAPI v3 schema
(``$ref`` inlined, ``X | None`` → X, ``int | str`` → int-or-string, titles dropped); CEL rules
and list types come from the fields' ``json_schema_extra``. Names and printer columns are
below. ``tests/unit/resources/test_crdgen.py`` fails when ``crds/`` differs from the output.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from . import (
    BATCH_KIND,
    BATCH_PLURAL,
    CONNECTION_KIND,
    CONNECTION_PLURAL,
    GROUP,
    MAX_CONNECTION_NAME,
    MAX_RUN_NAME,
    RUN_KIND,
    RUN_PLURAL,
    VERSION,
)
from .batch import BatchSpec, BatchStatus, PipelineBatch
from .connection import ConnectionSpec, ConnectionStatus, PipelineConnection
from .meta import DNS_LABEL, cel
from .run import PipelineRun, RunSpec, RunStatus

_DROP = {"title", "discriminator"}


class SchemaError(ValueError):
    """A model uses a construct the generator cannot express structurally."""


def structural(model: type[BaseModel]) -> dict[str, Any]:
    """The structural schema of ``model`` (as a validation schema, camelCase names)."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.pop("$defs", {})
    return _convert(raw, defs, model.__name__)


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    if "$ref" not in node:
        return node
    target = defs[node["$ref"].rsplit("/", 1)[-1]]
    merged = {**_resolve(target, defs), **{k: v for k, v in node.items() if k != "$ref"}}
    return merged


def _convert(node: dict[str, Any], defs: dict[str, Any], where: str) -> dict[str, Any]:
    node = _resolve(node, defs)
    if "allOf" in node:  # pydantic wraps a $ref with siblings in allOf on some versions
        (only,) = node.pop("allOf")
        node = {**_resolve(only, defs), **node}
    if "anyOf" in node:
        variants = [_resolve(v, defs) for v in node["anyOf"] if v.get("type") != "null"]
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        types = sorted(str(v.get("type")) for v in variants)
        if len(variants) == 1:
            node = {**variants[0], **rest}
        elif types == ["integer", "string"]:
            node = {"x-kubernetes-int-or-string": True, **rest}
        else:
            raise SchemaError(f"{where}: cannot express anyOf {types} structurally")
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP or (key == "default" and value is None):
            continue
        if key in ("exclusiveMinimum", "exclusiveMaximum"):  # JSON Schema 2020 -> OpenAPI v3
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
            out[key] = True
            continue
        if key == "properties":
            out[key] = {
                name: _convert(child, defs, f"{where}.{name}") for name, child in value.items()
            }
        elif key == "items" and isinstance(value, dict):
            out[key] = _convert(value, defs, f"{where}[]")
        elif key == "additionalProperties":
            if value is False:
                continue
            if value is True:
                if not node.get("x-kubernetes-preserve-unknown-fields"):
                    raise SchemaError(f"{where}: free-form map without preserve-unknown-fields")
                continue
            out[key] = _convert(value, defs, f"{where}{{}}")
        elif key == "description" and isinstance(value, str):
            out[key] = " ".join(value.replace("``", "").split())
        else:
            out[key] = value
    shapeless = "properties" not in out and "additionalProperties" not in out
    free = out.get("x-kubernetes-preserve-unknown-fields")
    if out.get("type") == "object" and shapeless and not free:
        raise SchemaError(f"{where}: object without properties")
    return out


def _printer(name: str, type_: str, path: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, "jsonPath": path, **extra}


def _name_rules(limit: int, why: str) -> list[dict[str, Any]]:
    return [
        cel(
            f"self.metadata.name.size() <= {limit}",
            f"metadata.name must be at most {limit} characters ({why})",
        ),
        cel(
            f"self.metadata.name.matches(r'{DNS_LABEL}')",
            "metadata.name must be a DNS label (lower-case letters, digits and '-')",
        ),
    ]


KINDS: list[dict[str, Any]] = [
    {
        "model": PipelineConnection,
        "spec": ConnectionSpec,
        "status": ConnectionStatus,
        "kind": CONNECTION_KIND,
        "plural": CONNECTION_PLURAL,
        "short": "pconn",
        "names": _name_rules(MAX_CONNECTION_NAME, "run, Job and pod names are derived from it"),
        "columns": [
            _printer("Type", "string", ".spec.type"),
            _printer("Enabled", "boolean", ".spec.enabled"),
            _printer("Schema", "string", ".spec.schemaName"),
            _printer("Schedule", "string", ".spec.schedule", priority=1),
            _printer("Ready", "string", '.status.conditions[?(@.type=="Ready")].status'),
            _printer(
                "Reason", "string", '.status.conditions[?(@.type=="Ready")].reason', priority=1
            ),
            _printer("Last Run", "date", ".status.lastRunAt"),
            _printer("Success", "boolean", ".status.lastRunSuccess"),
            _printer("Age", "date", ".metadata.creationTimestamp"),
        ],
    },
    {
        "model": PipelineRun,
        "spec": RunSpec,
        "status": RunStatus,
        "kind": RUN_KIND,
        "plural": RUN_PLURAL,
        "short": "prun",
        "names": _name_rules(MAX_RUN_NAME, "its Job and pods have names derived from it"),
        "columns": [
            _printer("Connection", "string", ".spec.connectionName"),
            _printer("Trigger", "string", ".spec.trigger"),
            _printer("Phase", "string", ".status.phase"),
            _printer("Reason", "string", ".status.reason"),
            _printer("Attempts", "integer", ".status.attempts"),
            _printer(
                "Records",
                "integer",
                ".status.progress.recordsExtracted",
                description="records extracted so far (live progress while Running)",
            ),
            _printer("Rows", "integer", ".status.result.rowsInserted"),
            _printer("Started", "date", ".status.startTime"),
            _printer("Completed", "date", ".status.completionTime"),
            _printer(
                "Message",
                "string",
                '.status.conditions[?(@.type=="Succeeded")].message',
                priority=1,
            ),
            _printer("Age", "date", ".metadata.creationTimestamp"),
        ],
        "selectable": [{"jsonPath": ".spec.connectionName"}, {"jsonPath": ".spec.trigger"}],
    },
    {
        "model": PipelineBatch,
        "spec": BatchSpec,
        "status": BatchStatus,
        "kind": BATCH_KIND,
        "plural": BATCH_PLURAL,
        "short": "pbatch",
        "names": [],
        "columns": [
            _printer(
                "Phase",
                "string",
                '.status.conditions[?(@.type=="Complete")].reason',
                description="Queued, Running, Finished or Cancelled (status.state, capitalised "
                "like a run's phase)",
            ),
            _printer("State", "string", ".status.state", priority=1),
            _printer("Current", "string", ".status.current"),
            _printer("Connections", "string", ".spec.connections", priority=1),
            _printer("Started", "date", ".status.startedAt"),
            _printer("Finished", "date", ".status.finishedAt"),
            _printer("Age", "date", ".metadata.creationTimestamp"),
        ],
    },
]


def crd(entry: dict[str, Any]) -> dict[str, Any]:
    """One CustomResourceDefinition."""
    kind, plural = entry["kind"], entry["plural"]
    schema: dict[str, Any] = {
        "type": "object",
        "description": " ".join((entry["model"].__doc__ or kind).split()),
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": structural(entry["spec"]),
            "status": structural(entry["status"]),
        },
    }
    if entry["names"]:
        schema["x-kubernetes-validations"] = entry["names"]
    version: dict[str, Any] = {
        "name": VERSION,
        "served": True,
        "storage": True,
        "subresources": {"status": {}},
        "additionalPrinterColumns": entry["columns"],
        "schema": {"openAPIV3Schema": schema},
    }
    if entry.get("selectable"):
        version["selectableFields"] = entry["selectable"]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.{GROUP}",
            "labels": {
                "app.kubernetes.io/name": "datapipelines",
                "app.kubernetes.io/part-of": "datapipelines",
            },
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "plural": plural,
                "singular": kind.lower(),
                "kind": kind,
                "listKind": f"{kind}List",
                "shortNames": [entry["short"]],
                "categories": ["datapipelines"],
            },
            "versions": [version],
        },
    }


HEADER = (
    "# {kind} CRD — GENERATED from datapipelines.resources ({module}); do not edit.\n"
    "# Regenerate: make crds (python -m datapipelines.resources.crdgen --write crds)\n"
)


class _Dumper(yaml.SafeDumper):
    """Plain YAML: no anchors/aliases for the lists the models share."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def render(entry: dict[str, Any]) -> str:
    """The YAML text of one CRD file."""
    body = yaml.dump(crd(entry), Dumper=_Dumper, sort_keys=False, width=100, allow_unicode=True)
    module = entry["model"].__module__
    return HEADER.format(kind=entry["kind"], module=module) + body


def files() -> dict[str, str]:
    """``{file name: text}`` of every CRD."""
    return {f"{e['plural']}.yaml": render(e) for e in KINDS}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", metavar="DIR", help="write the CRD files into DIR")
    parser.add_argument("--check", metavar="DIR", help="exit 1 when DIR differs")
    args = parser.parse_args(argv)
    generated = files()
    if args.write:
        for name, text in generated.items():
            (Path(args.write) / name).write_text(text)
        return 0
    if args.check:
        stale = [n for n, t in generated.items() if (Path(args.check) / n).read_text() != t]
        for name in stale:
            print(f"{args.check}/{name} is out of date: run make crds", file=sys.stderr)
        return 1 if stale else 0
    for text in generated.values():
        sys.stdout.write("---\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
