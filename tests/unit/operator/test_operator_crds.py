"""The CRD manifests (generated from datapipelines.resources, see tests/unit/resources/
test_crdgen.py): names, structure, preserve-unknown only where free-form, the cron rule."""

from __future__ import annotations

import copy
import functools
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from datapipelines.resources import GROUP, VERSION

CRDS = Path(__file__).resolve().parents[3] / "crds"

#: The only free-form subtrees: dlt's own rest_api configuration.
ALLOWED_FREE_FORM = {
    ("pipelineconnections", "spec.source.restApi.resources[]"),
    ("pipelineconnections", "spec.source.restApi.resourceDefaults"),
}


@functools.cache
def load(plural: str) -> dict[str, Any]:
    return yaml.safe_load((CRDS / f"{plural}.yaml").read_text())


def schema(plural: str) -> dict[str, Any]:
    return copy.deepcopy(load(plural))["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def walk(node: dict[str, Any], path: str = ""):
    yield path, node
    for key, child in (node.get("properties") or {}).items():
        yield from walk(child, f"{path}.{key}" if path else key)
    if isinstance(node.get("items"), dict):
        yield from walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], f"{path}{{}}")


@pytest.mark.parametrize(
    ("plural", "kind", "short"),
    [
        ("pipelineconnections", "PipelineConnection", "pconn"),
        ("pipelineruns", "PipelineRun", "prun"),
        ("pipelinebatches", "PipelineBatch", "pbatch"),
    ],
)
def test_names_and_versions(plural: str, kind: str, short: str) -> None:
    crd = load(plural)
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["metadata"]["name"] == f"{plural}.{GROUP}"
    spec = crd["spec"]
    assert spec["group"] == GROUP and spec["scope"] == "Namespaced"
    assert spec["names"]["kind"] == kind and spec["names"]["shortNames"] == [short]
    assert spec["names"]["categories"] == ["datapipelines"]
    (version,) = spec["versions"]
    assert version["name"] == VERSION and version["served"] and version["storage"]
    assert version["subresources"] == {"status": {}}
    assert version["additionalPrinterColumns"]


@pytest.mark.parametrize("plural", ["pipelineconnections", "pipelineruns", "pipelinebatches"])
def test_structural_and_free_form_only_where_allowed(plural: str) -> None:
    for path, node in walk(schema(plural)):
        if node.get("x-kubernetes-preserve-unknown-fields"):
            assert (plural, path) in ALLOWED_FREE_FORM, path
            continue
        if node.get("type") == "object" and path != "metadata":
            assert node.get("properties") or node.get("additionalProperties"), path
        if not node.get("x-kubernetes-int-or-string") and path != "metadata":
            assert node.get("type"), f"{plural}: {path} has no type"
        if path in ("spec", "status"):
            assert not node.get("x-kubernetes-preserve-unknown-fields")


def test_conditions_are_a_map_keyed_by_type() -> None:
    for plural in ("pipelineconnections", "pipelineruns", "pipelinebatches"):
        cond = schema(plural)["properties"]["status"]["properties"]["conditions"]
        assert cond["x-kubernetes-list-type"] == "map"
        assert cond["x-kubernetes-list-map-keys"] == ["type"]


def test_run_connection_name_is_a_selectable_field() -> None:
    version = load("pipelineruns")["spec"]["versions"][0]
    assert {"jsonPath": ".spec.connectionName"} in version["selectableFields"]


def _cron_regex() -> re.Pattern[str]:
    rules = schema("pipelineconnections")["properties"]["spec"]["properties"]["schedule"][
        "x-kubernetes-validations"
    ]
    rule = rules[0]["rule"]
    m = re.fullmatch(r"self\.matches\(r'(.*)'\)", rule)
    assert m, rule
    return re.compile(m.group(1))


@pytest.mark.parametrize(
    "expr",
    [
        "*/15 * * * *",
        "0 2 * * *",
        "0 0 1 1 *",
        "5,35 8-18/2 * * MON-FRI",
        "@daily",
        "@hourly",
        "0 0 * jan sun",
        "59 23 31 12 7",
    ],
)
def test_cron_rule_accepts(expr: str) -> None:
    assert _cron_regex().search(expr)


@pytest.mark.parametrize(
    "expr",
    [
        "61 * * * *",
        "* 24 * * *",
        "* * 32 * *",
        "* * * 13 *",
        "* * * * 8",
        "* * * *",
        "* * * * * *",
        "every minute",
        "@sometimes",
        "",
    ],
)
def test_cron_rule_rejects(expr: str) -> None:
    assert not _cron_regex().search(expr)


def test_defaults_match_contract() -> None:
    props = schema("pipelineconnections")["properties"]["spec"]["properties"]
    assert props["enabled"]["default"] is True
    assert props["writeDisposition"]["default"] == "append"
    assert props["concurrencyPolicy"]["default"] == "Forbid"
    assert props["concurrencyPolicy"]["enum"] == ["Forbid", "Queue", "Replace"]
    assert (props["retries"]["minimum"], props["retries"]["maximum"]) == (0, 10)
    assert (props["timeoutSeconds"]["minimum"], props["timeoutSeconds"]["maximum"]) == (1, 86400)
    assert (props["historyLimit"]["minimum"], props["historyLimit"]["maximum"]) == (0, 1000)
    assert props["schemaName"]["pattern"] == "^[a-z_][a-z0-9_]{0,62}$"
    assert props["destination"]["properties"]["type"]["default"] == "duckdb"
    assert (props["startTimeoutSeconds"]["minimum"], props["startTimeoutSeconds"]["default"]) == (
        10,
        300,
    )


def test_volumes_are_typed_and_name_exactly_one_type() -> None:
    spec = schema("pipelineconnections")["properties"]["spec"]["properties"]
    volume = spec["destination"]["properties"]["duckdb"]["properties"]["volume"]
    assert set(volume["properties"]) == {
        "persistentVolumeClaim",
        "emptyDir",
        "configMap",
        "hostPath",
        "nfs",
        "csi",
    }
    assert any("size() == 1" in r["rule"] for r in volume["x-kubernetes-validations"])
    assert volume["properties"]["persistentVolumeClaim"]["required"] == ["claimName"]


def test_runner_env_cannot_set_the_operators_variables() -> None:
    env = schema("pipelineconnections")["properties"]["spec"]["properties"]["runner"]
    item = env["properties"]["env"]["items"]
    assert any("DATAPIPELINES_" in r["rule"] for r in item["x-kubernetes-validations"])
