"""Every field of the CRDs has a description, so ``kubectl explain`` teaches the resources.

The descriptions come from the models' ``Field(description=...)`` (or the docstring of a nested
model); ``crds/`` being the generator's output is checked in ``test_crdgen.py``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

CRDS = Path(__file__).resolve().parents[3] / "crds"
PLURALS = ("pipelineconnections", "pipelineruns", "pipelinebatches")

#: Top-level properties every object has; the apiserver documents them itself.
STANDARD = {"apiVersion", "kind", "metadata"}


@functools.cache
def _crd(plural: str) -> dict[str, Any]:
    return yaml.safe_load((CRDS / f"{plural}.yaml").read_text())


def properties(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """``(path, schema)`` of every named property below ``node``, through nested objects,
    array items (``[]``) and map values (``{}``)."""
    for name, child in (node.get("properties") or {}).items():
        where = f"{path}.{name}" if path else name
        if not (path == "" and name in STANDARD):
            yield where, child
        yield from properties(child, where)
    if isinstance(node.get("items"), dict):
        yield from properties(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from properties(node["additionalProperties"], f"{path}{{}}")


def undescribed(schema: dict[str, Any]) -> list[str]:
    """Paths of the properties without a (non-blank) description."""
    return [
        path
        for path, node in properties(schema)
        if not isinstance(node.get("description"), str) or not node["description"].strip()
    ]


@pytest.mark.parametrize("plural", PLURALS)
def test_every_property_has_a_description(plural: str) -> None:
    versions = _crd(plural)["spec"]["versions"]
    assert versions
    for version in versions:
        schema = version["schema"]["openAPIV3Schema"]
        assert schema.get("description", "").strip(), f"{plural} {version['name']}: the kind"
        paths = [path for path, _ in properties(schema)]
        assert {"spec", "status"} <= set(paths)
        missing = undescribed(schema)
        assert not missing, (
            f"{plural} {version['name']}: {len(missing)} of {len(paths)} properties have no "
            "description (add Field(description=...) to the model; make crds):\n  "
            + "\n  ".join(missing)
        )


def test_the_walk_reaches_nested_items_and_maps() -> None:
    schema = {
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": {
                "type": "object",
                "description": "d",
                "properties": {
                    "list": {
                        "type": "array",
                        "description": "d",
                        "items": {
                            "type": "object",
                            "properties": {"inItem": {"type": "string"}},
                        },
                    },
                    "map": {
                        "type": "object",
                        "description": " ",
                        "additionalProperties": {
                            "type": "object",
                            "properties": {"inValue": {"type": "integer", "description": "d"}},
                        },
                    },
                    "plain": {"type": "string"},
                },
            },
        },
    }
    assert undescribed(schema) == ["spec.list[].inItem", "spec.map", "spec.plain"]
