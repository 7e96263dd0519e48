"""render_job: the Job a run becomes (docs/contracts.md, "Operator → runner pod"). Pure."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from datapipelines.operator import jobs, views
from datapipelines.operator.config import Settings
from datapipelines.operator.jobs import render_job
from datapipelines.resources import podcontract as pod
from datapipelines.resources.connection import ConnectionSpec, EnvVar
from datapipelines.resources.podcontract import bucket_dir
from tests.unit.operator.opkit import (
    duckdb_on_volume,
    postgres_destination,
    rest_spec,
    run,
    run_body,
    settings,
)


def spec_of(**overrides: Any) -> ConnectionSpec:
    return ConnectionSpec.model_validate(rest_spec(**overrides))


def render(config: Settings | None = None, *, batch: str | None = None, **spec: Any) -> dict:
    return render_job("demo", spec_of(**spec), run(batch=batch), config or settings())


def pod_spec(job: dict[str, Any]) -> dict[str, Any]:
    return job["spec"]["template"]["spec"]


def container(job: dict[str, Any]) -> dict[str, Any]:
    (only,) = pod_spec(job)["containers"]
    return only


def env_of(job: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(job)["env"]}


def mounts(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """mountPath → the mount and its volume."""
    vols = {v["name"]: v for v in pod_spec(job)["volumes"]}
    return {
        m["mountPath"]: {**m, "volume": vols[m["name"]]} for m in container(job)["volumeMounts"]
    }


def test_identity_labels_and_owner() -> None:
    job = render(batch="b1")
    meta = job["metadata"]
    assert (meta["name"], meta["namespace"]) == ("demo-aaaaa", "ns1")
    (owner,) = meta["ownerReferences"]
    assert owner == {
        "apiVersion": "datapipelines.io/v1alpha1",
        "kind": "PipelineRun",
        "name": "demo-aaaaa",
        "uid": "uid-demo-aaaaa",
        "controller": True,
        "blockOwnerDeletion": True,
    }
    for labels in (meta["labels"], job["spec"]["template"]["metadata"]["labels"]):
        assert labels["datapipelines.io/run"] == "demo-aaaaa"
        assert labels["datapipelines.io/connection"] == "demo"
        assert labels["datapipelines.io/trigger"] == "api"
        assert labels["datapipelines.io/batch"] == "b1"
        assert labels["app.kubernetes.io/managed-by"] == "datapipelines-operator"
    assert "datapipelines.io/batch" not in render()["metadata"]["labels"]


def test_retries_deadline_ttl_and_one_pod_at_a_time() -> None:
    job = render(settings(job_ttl_seconds=120), retries=5, timeoutSeconds=77)
    spec = job["spec"]
    assert spec["backoffLimit"] == 5
    assert spec["activeDeadlineSeconds"] == 77
    assert spec["ttlSecondsAfterFinished"] == 120
    assert (spec["completions"], spec["parallelism"]) == (1, 1)
    assert spec["podReplacementPolicy"] == "Failed"
    assert pod_spec(job)["restartPolicy"] == "Never"


def test_pod_failure_policy_stops_retrying_on_exit_codes_2_and_3() -> None:
    fail_job, ignore = render()["spec"]["podFailurePolicy"]["rules"]
    assert fail_job["action"] == "FailJob"
    assert fail_job["onExitCodes"] == {
        "containerName": "runner",
        "operator": "In",
        "values": [2, 3],
    }
    assert list(pod.EXIT_NO_RETRY) == [pod.EXIT_BAD_CONFIG, pod.EXIT_CONTRACT_VIOLATION] == [2, 3]
    assert ignore == {
        "action": "Ignore",
        "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
    }


def test_restricted_security_contexts() -> None:
    job = render()
    c = container(job)
    sc = c["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["runAsUser"] == sc["runAsGroup"] == 10001
    assert sc["allowPrivilegeEscalation"] is False and sc["privileged"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    psc = pod_spec(job)["securityContext"]
    assert psc["runAsNonRoot"] is True and psc["fsGroup"] == 10001
    assert psc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert c["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert c["terminationMessagePath"] == "/dev/termination-log"
    assert pod_spec(job)["enableServiceLinks"] is False
    assert pod_spec(job)["serviceAccountName"] == "datapipelines-runner"


def test_rendered_manifests_share_no_mutable_state() -> None:
    saved = copy.deepcopy(jobs.RESTRICTED_CONTAINER)
    try:
        first = render()
        container(first)["securityContext"]["capabilities"]["drop"].clear()
        container(first)["securityContext"]["runAsUser"] = 0
        second = container(render())["securityContext"]
        assert second["runAsUser"] == 10001 and second["capabilities"] == {"drop": ["ALL"]}
    finally:  # never leave a corrupted template to the other tests
        jobs.RESTRICTED_CONTAINER.clear()
        jobs.RESTRICTED_CONTAINER.update(saved)


def test_env_contract() -> None:
    spec = spec_of()
    job = render_job("demo", spec, run(), settings(log_format="text"))
    env = env_of(job)
    assert env["DATAPIPELINES_CONNECTION_NAME"] == "demo"
    assert env["DATAPIPELINES_RUN_NAME"] == "demo-aaaaa"
    assert env["DATAPIPELINES_NAMESPACE"] == "ns1"
    assert env["DATAPIPELINES_POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert json.loads(env["DATAPIPELINES_CONNECTION_SPEC"]) == spec.to_k8s()
    assert env["DATAPIPELINES_SECRETS_DIR"] == pod.SECRETS_DIR
    assert env["DATAPIPELINES_DATA_DIR"] == pod.DATA_DIR
    assert env["DATAPIPELINES_KUBE_API"] == "https://10.0.0.1:443"
    assert env["DATAPIPELINES_LOG_FORMAT"] == "text"


def test_runner_env_is_kept_but_cannot_override_the_contract() -> None:
    user_env = [
        {"name": "HTTP_PROXY", "value": "http://proxy:3128"},
        {"name": "RUNNER__FROM_MAP", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}},
    ]
    job = render(runner={"env": user_env})
    env = env_of(job)
    assert env["DATAPIPELINES_RUN_NAME"] == "demo-aaaaa"
    assert env["HTTP_PROXY"] == "http://proxy:3128"
    assert env["RUNNER__FROM_MAP"] == {"configMapKeyRef": {"name": "cm", "key": "k"}}


@pytest.mark.parametrize("name", ["DATAPIPELINES_RUN_NAME", "PYTHONPATH", "LD_PRELOAD", "FROM_MAP"])
def test_runner_env_outside_the_allow_list_is_refused_and_never_rendered(name: str) -> None:
    # The CRD and the model refuse the name; an object stored before the rule is rendered
    # without it.
    with pytest.raises(ValueError, match=f"runner.env {name}"):
        spec_of(runner={"env": [{"name": name, "value": "/x"}]})
    spec = spec_of()
    spec.runner.env = [EnvVar.model_construct(name=name, value="/x", value_from=None)]
    job = render_job("demo", spec, run(), settings())
    names = [e["name"] for e in container(job)["env"]]
    assert names.count(name) == (1 if name == "DATAPIPELINES_RUN_NAME" else 0)
    assert env_of(job).get("DATAPIPELINES_RUN_NAME") == "demo-aaaaa"


def test_image_pull_policy_and_resources() -> None:
    job = render(settings(runner_image="reg.example/runner:2", runner_image_pull_policy="Always"))
    assert container(job)["image"] == "reg.example/runner:2"
    assert container(job)["imagePullPolicy"] == "Always"
    # the installation's defaults: bounded memory and ephemeral storage
    assert container(job)["resources"] == {
        "requests": {"cpu": "100m", "memory": "256Mi", "ephemeral-storage": "256Mi"},
        "limits": {"memory": "2Gi", "ephemeral-storage": "20Gi"},
    }
    res = {"limits": {"memory": "128Mi"}, "requests": {"cpu": "200m"}}
    job = render(runner={"image": "localhost/datapipelines-runner:v9", "resources": res})
    assert container(job)["image"] == "localhost/datapipelines-runner:v9"
    # the connection's keys win; the default memory request is lowered to its own limit
    assert container(job)["resources"] == {
        "requests": {"cpu": "200m", "memory": "128Mi", "ephemeral-storage": "256Mi"},
        "limits": {"memory": "128Mi", "ephemeral-storage": "20Gi"},
    }
    job = render(settings(runner_resources={}))
    assert "resources" not in container(job)


def test_one_secret_volume_per_secret_with_only_the_referenced_keys() -> None:
    job = render(
        source={
            "restApi": {
                "baseUrl": "http://x/",
                "resources": ["items"],
                "auth": {
                    "type": "http_basic",
                    "usernameSecretRef": {"name": "api", "key": "user"},
                    "passwordSecretRef": {"name": "api", "key": "password"},
                },
            }
        },
        destination=postgres_destination(secret="pg", key="password"),
    )
    found = mounts(job)
    api = found[f"{pod.SECRETS_DIR}/api"]
    assert api["readOnly"] is True
    assert api["volume"]["secret"]["secretName"] == "api"
    assert api["volume"]["secret"]["items"] == [
        {"key": "user", "path": "user"},
        {"key": "password", "path": "password"},
    ]
    assert api["volume"]["secret"]["defaultMode"] == 0o440
    pg = found[f"{pod.SECRETS_DIR}/pg"]
    assert pg["volume"]["secret"]["items"] == [{"key": "password", "path": "password"}]
    secret_volumes = [v for v in pod_spec(job)["volumes"] if "secret" in v]
    assert len(secret_volumes) == 2


def test_writable_scratch_dirs_on_a_read_only_root() -> None:
    found = mounts(render(destination=postgres_destination()))
    # bounded: a big sync cannot fill the node's disk and get other pods evicted
    assert found[pod.DATA_DIR]["volume"] == {"name": "data", "emptyDir": {"sizeLimit": "20Gi"}}
    assert found[pod.TMP_DIR]["volume"] == {"name": "tmp", "emptyDir": {"sizeLimit": "2Gi"}}
    config = settings(runner_scratch_size_limit="50Gi", runner_tmp_size_limit="1Gi")
    found = mounts(render(config, destination=postgres_destination()))
    assert found[pod.DATA_DIR]["volume"]["emptyDir"] == {"sizeLimit": "50Gi"}
    assert found[pod.TMP_DIR]["volume"]["emptyDir"] == {"sizeLimit": "1Gi"}


@pytest.mark.parametrize(
    ("destination", "claim", "warehouse"),
    [
        pytest.param(None, "warehouse", True, id="default-file-with-a-claim"),
        pytest.param(None, "", False, id="default-file-without-a-claim"),
        pytest.param(
            {"type": "duckdb", "duckdb": {"path": f"{pod.WAREHOUSE_DIR}/other.duckdb"}},
            "wh",
            True,
            id="other-file-on-the-warehouse",
        ),
        pytest.param(
            {"type": "duckdb", "duckdb": {"path": "/tmp/x.duckdb", "ephemeral": True}},
            "wh",
            False,
            id="ephemeral",
        ),
        pytest.param(duckdb_on_volume(), "wh", False, id="own-volume"),
        pytest.param(postgres_destination(), "wh", False, id="postgres"),
    ],
)
def test_the_warehouse_claim_is_mounted_only_for_duckdb_on_the_warehouse(
    destination: dict[str, Any] | None, claim: str, warehouse: bool
) -> None:
    spec = {"destination": destination} if destination else {}
    found = mounts(render(settings(warehouse_claim=claim), **spec))
    if warehouse:
        assert found[pod.WAREHOUSE_DIR]["volume"]["persistentVolumeClaim"] == {"claimName": claim}
    else:
        assert pod.WAREHOUSE_DIR not in found
        assert all(
            "persistentVolumeClaim" not in m["volume"] or m["name"] == "duckdb"
            for m in found.values()
        )


def test_duckdb_volume_at_the_file_directory() -> None:
    found = mounts(render(destination=duckdb_on_volume("/data/sets/shared.duckdb", claim="c1")))
    mount = found["/data/sets"]
    assert mount["volume"] == {"name": "duckdb", "persistentVolumeClaim": {"claimName": "c1"}}
    assert not mount.get("readOnly")


def test_filesystem_source_volume_read_only_at_the_bucket_dir() -> None:
    job = render(
        type="filesystem",
        source={
            "filesystem": {
                "bucketUrl": "file:///data/in",
                "volume": {"configMap": {"name": "files"}},
            }
        },
    )
    mount = mounts(job)["/data/in"]
    assert mount["readOnly"] is True
    assert mount["volume"] == {"name": "source", "configMap": {"name": "files"}}


@pytest.mark.parametrize(
    ("url", "directory"),
    [
        ("file:///data/in", "/data/in"),
        ("file:///data/in/", "/data/in/"),
        ("/data/in", "/data/in"),
        ("file:///", "/"),
        ("s3://bucket/prefix", None),
        ("gs://b", None),
    ],
)
def test_bucket_dir(url: str, directory: str | None) -> None:
    assert bucket_dir(url) == directory


def test_node_selector_tolerations_and_host_network_from_settings() -> None:
    tolerations = [
        {"key": "dedicated", "operator": "Equal", "value": "etl", "effect": "NoSchedule"}
    ]
    job = render(
        settings(
            runner_node_selector={"pool": "etl"},
            runner_tolerations=tolerations,
            runner_host_network=True,
            runner_service_account="runner-sa",
        )
    )
    spec = pod_spec(job)
    assert spec["nodeSelector"] == {"pool": "etl"}
    assert spec["tolerations"] == tolerations
    assert spec["hostNetwork"] is True and spec["dnsPolicy"] == "ClusterFirstWithHostNet"
    assert spec["serviceAccountName"] == "runner-sa"

    plain = pod_spec(render())
    assert plain["hostNetwork"] is False
    assert "dnsPolicy" not in plain and "nodeSelector" not in plain and "tolerations" not in plain


def test_a_token_rotating_connection_runs_as_its_own_identity_with_its_secret_mounted() -> None:
    xero = ConnectionSpec.model_validate(
        {"type": "xero", "schemaName": "books", "source": {"xero": {"secretName": "xero-oauth"}}}
    )
    job = render_job("books", xero, run(), settings(runner_service_account="runner-sa"))
    assert pod_spec(job)["serviceAccountName"] == "dp-oauth2-books"
    volume = next(v for v in pod_spec(job)["volumes"] if "secret" in v)
    assert volume["secret"]["secretName"] == "xero-oauth"
    assert [i["key"] for i in volume["secret"]["items"]] == [
        "client_id",
        "client_secret",
        "refresh_token",
    ]
    account, binding = jobs.oauth2_identity(
        "books", "team-a", "uid-1", settings(runner_oauth2_role="rel-runner-oauth2")
    )
    assert account["kind"] == "ServiceAccount" and account["metadata"]["name"] == "dp-oauth2-books"
    owner = account["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("PipelineConnection", "books", "uid-1")
    assert binding["roleRef"]["name"] == "rel-runner-oauth2"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "dp-oauth2-books", "namespace": "team-a"}
    ]
    assert binding["metadata"]["ownerReferences"] == account["metadata"]["ownerReferences"]
    plain = pod_spec(render(settings(runner_service_account="runner-sa")))
    assert plain["serviceAccountName"] == "runner-sa"  # no rotation: the shared runner identity


def test_a_runs_options_reach_its_pod_and_a_plain_run_has_none() -> None:
    plain = env_of(render())
    assert pod.ENV_RUN_OPTIONS not in plain
    body = run_body()
    body["spec"].update(fullRefresh=True, streams=["items"], since="2026-01-31T00:00:00Z")
    view = views.run_view(body)
    assert view is not None
    job = render_job("demo", spec_of(), view, settings())
    assert json.loads(env_of(job)[pod.ENV_RUN_OPTIONS]) == {
        "fullRefresh": True,
        "streams": ["items"],
        "since": "2026-01-31T00:00:00Z",
    }
