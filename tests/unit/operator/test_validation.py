"""validation.problems: what makes a connection not Ready here, each naming the field and the
installation setting (the sandbox). Pure."""

from __future__ import annotations

from typing import Any

import pytest

from datapipelines.operator.config import Settings
from datapipelines.operator.validation import (
    REASON_INVALID_SPEC,
    REASON_NO_WAREHOUSE,
    REASON_SANDBOX,
    problems,
    sandbox,
)
from datapipelines.resources.connection import ConnectionSpec
from tests.unit.operator.opkit import (
    connection,
    duckdb_on_volume,
    postgres_destination,
    rest_spec,
    settings,
)


def found(config: Settings | None = None, **spec: Any) -> list[tuple[str, str]]:
    view = connection(spec=rest_spec(**spec))
    return [(p.reason, p.message) for p in problems(view, config or settings())]


def test_a_plain_connection_has_no_problem() -> None:
    assert found() == []
    assert found(destination=postgres_destination()) == []
    assert found(destination=duckdb_on_volume()) == []


def test_a_spec_that_does_not_parse_names_each_field() -> None:
    view = connection(spec={"type": "rest_api", "schemaName": "Bad Name", "source": {}})
    result = problems(view, settings())
    assert {p.reason for p in result} == {REASON_INVALID_SPEC}
    paths = [p.message.split(":", 1)[0] for p in result]
    assert "spec.schemaName" in paths


def test_postgres_without_a_password_secret_is_invalid() -> None:
    dest = postgres_destination()
    del dest["postgres"]["passwordSecretRef"]
    view = connection(spec=rest_spec(destination=dest))
    (problem,) = problems(view, settings())
    assert problem.reason == REASON_INVALID_SPEC
    assert problem.message.startswith("spec.destination.postgres.passwordSecretRef: ")


@pytest.mark.parametrize(
    ("destination", "claim", "reason"),
    [
        (None, "", REASON_NO_WAREHOUSE),
        (
            {"type": "duckdb", "duckdb": {"path": "/var/lib/datapipelines/warehouse/x.duckdb"}},
            "",
            REASON_NO_WAREHOUSE,
        ),
        (None, "warehouse", None),
        (duckdb_on_volume(), "", None),
        (postgres_destination(), "", None),
        ({"type": "duckdb", "duckdb": {"path": "/tmp/x.duckdb", "ephemeral": True}}, "", None),
    ],
)
def test_the_warehouse_must_be_configured_for_a_file_on_it(
    destination: dict[str, Any] | None, claim: str, reason: str | None
) -> None:
    spec = {"destination": destination} if destination else {}
    result = found(settings(warehouse_claim=claim), **spec)
    assert [r for r, _ in result] == ([reason] if reason else [])
    if reason:
        assert "warehouse.persistence.enabled" in result[0][1]


def test_a_volume_on_a_reserved_directory_is_invalid() -> None:
    # objects stored before the CEL rule existed still get a clear answer
    result = found(destination=duckdb_on_volume("/etc/x.duckdb"))
    assert result and result[0][0] == REASON_INVALID_SPEC
    assert "spec.destination.duckdb.path" in result[0][1] and "/etc/x.duckdb" in result[0][1]


def test_source_and_destination_volumes_need_their_own_directories() -> None:
    result = found(
        type="filesystem",
        source={
            "filesystem": {
                "bucketUrl": "file:///data",
                "volume": {"persistentVolumeClaim": {"claimName": "in"}},
            }
        },
        destination=duckdb_on_volume("/data/out.duckdb"),
    )
    assert [r for r, _ in result] == [REASON_INVALID_SPEC]
    assert "spec.source.filesystem.bucketUrl" in result[0][1]
    assert "spec.destination.duckdb.path" in result[0][1]


# --------------------------------------------------------------------------- the sandbox


def spec_of(**overrides: Any) -> ConnectionSpec:
    return ConnectionSpec.model_validate(rest_spec(**overrides))


@pytest.mark.parametrize(
    ("image", "allowed"),
    [
        ("localhost/datapipelines-runner:dev", True),  # the default runner's repository
        ("localhost/datapipelines-runner:v2", True),
        ("localhost/datapipelines-runner@sha256:" + "a" * 64, True),
        ("localhost/datapipelines-runner", True),
        ("localhost/datapipelines-runner-evil:1", False),
        ("localhost/datapipelines:dev", False),
        ("reg.example:5000/team/runner:1", True),  # from sandbox.allowedImages
        ("reg.example:5000/team/runner-x:1", False),
        ("docker.io/library/python:3.12", False),
    ],
)
def test_image_must_come_from_an_allowed_repository(image: str, allowed: bool) -> None:
    config = settings(sandbox_images=["reg.example:5000/team/runner"])
    result = sandbox(spec_of(runner={"image": image}), config)
    if allowed:
        assert result == []
    else:
        (problem,) = result
        assert problem.reason == REASON_SANDBOX
        assert f"spec.runner.image {image!r} is not allowed" in problem.message
        assert "sandbox.allowedImages" in problem.message
        assert "reg.example:5000/team/runner" in problem.message
        assert "localhost/datapipelines-runner" in problem.message


@pytest.mark.parametrize(
    ("field", "spec"),
    [
        (
            "spec.destination.duckdb.volume",
            {
                "destination": {
                    "type": "duckdb",
                    "duckdb": {
                        "path": "/data/x.duckdb",
                        "volume": {"nfs": {"server": "nfs", "path": "/x"}},
                    },
                }
            },
        ),
        (
            "spec.source.filesystem.volume",
            {
                "type": "filesystem",
                "source": {
                    "filesystem": {
                        "bucketUrl": "/data/in",
                        "volume": {"hostPath": {"path": "/srv/in"}},
                    }
                },
            },
        ),
    ],
)
def test_volume_types_are_a_setting(field: str, spec: dict[str, Any]) -> None:
    (problem,) = sandbox(spec_of(**spec), settings())
    assert problem.reason == REASON_SANDBOX
    assert problem.message.startswith(f"{field}: volume type ")
    assert "sandbox.volumeTypes" in problem.message
    assert "persistentVolumeClaim, emptyDir, configMap" in problem.message
    kind = problem.message.split("volume type ", 1)[1].split()[0]
    assert sandbox(spec_of(**spec), settings(sandbox_volume_types=[kind])) == []


def test_runner_env_may_read_only_allowed_secrets() -> None:
    env = [
        {"name": "RUNNER__PLAIN", "value": "x"},
        {"name": "NO_PROXY", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}},
        {"name": "HTTPS_PROXY", "valueFrom": {"secretKeyRef": {"name": "api-token", "key": "t"}}},
    ]
    (problem,) = sandbox(spec_of(runner={"env": env}), settings())
    assert problem.reason == REASON_SANDBOX
    assert problem.message.startswith("spec.runner.env[2] (HTTPS_PROXY) reads Secret 'api-token'")
    assert "allowed: none" in problem.message and "sandbox.envSecrets" in problem.message
    assert sandbox(spec_of(runner={"env": env}), settings(sandbox_env_secrets=["api-token"])) == []


def test_runner_resources_above_the_sandbox_maximum_are_refused() -> None:
    maximum = {"limits": {"cpu": "8", "memory": "32Gi", "ephemeral-storage": "200Gi"}}
    big = {"requests": {"cpu": "16"}, "limits": {"memory": "64Gi", "ephemeral-storage": "1Ti"}}
    (problem,) = sandbox(
        spec_of(runner={"resources": big}), settings(sandbox_max_resources=maximum)
    )
    assert problem.reason == REASON_SANDBOX
    assert problem.message == (
        "spec.runner.resources above this installation's maximum: requests.cpu 16 > 8; "
        "limits.memory 64Gi > 32Gi; limits.ephemeral-storage 1Ti > 200Gi "
        "(setting sandbox.maxResources)"
    )
    fits = {"requests": {"cpu": "8000m"}, "limits": {"memory": "32Gi"}}
    assert (
        sandbox(spec_of(runner={"resources": fits}), settings(sandbox_max_resources=maximum)) == []
    )
    assert sandbox(spec_of(runner={"resources": big}), settings()) == []


def test_denied_secrets_may_not_be_referenced_anywhere() -> None:
    config = settings(sandbox_denied_secrets=["operator-db", "api-key"])
    spec = spec_of(
        type="sql_database",
        source={
            "sqlDatabase": {
                "credentialsSecretRef": {"name": "api-key", "key": "url"},
                "tables": ["t"],
            }
        },
        destination=postgres_destination(secret="operator-db"),
    )
    result = sandbox(spec, config)
    assert [p.reason for p in result] == [REASON_SANDBOX, REASON_SANDBOX]
    assert all("belongs to the installation" in p.message for p in result)
    assert "'api-key'" in result[0].message and "'operator-db'" in result[1].message


def test_helm_release_secrets_are_always_denied() -> None:
    """Helm's release Secrets hold the rendered manifests, a generated API key among them."""
    spec = spec_of(destination=postgres_destination(secret="sh.helm.release.v1.dp.v3"))
    (problem,) = sandbox(spec, settings())
    assert problem.reason == REASON_SANDBOX and "Helm release" in problem.message


def test_every_problem_is_reported_most_fundamental_first() -> None:
    view = connection(
        spec=rest_spec(
            schedule="0 * * * *",
            timeZone="Mars/Olympus",
            runner={"image": "evil.example/x:1"},
        )
    )
    reasons = [p.reason for p in problems(view, settings(warehouse_claim=""))]
    assert reasons == ["InvalidTimeZone", REASON_NO_WAREHOUSE, REASON_SANDBOX]
