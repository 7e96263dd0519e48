"""render_job: the Job manifest a run becomes (docs/contracts.md, "Operator → runner pod")."""

from __future__ import annotations

import json

from datapipelines.operator.config import Settings
from datapipelines.operator.jobs import render_job, secret_refs, short_name
from tests.unit.operator.opkit import connection, run


def env_of(job: dict) -> dict[str, str]:
    return {
        e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]
    }


def test_identity_owner_and_labels(settings: Settings) -> None:
    job = render_job(connection(), run(labels={"datapipelines.io/batch": "b1"}), settings)
    meta = job["metadata"]
    assert meta["name"] == "demo-abcde" and meta["namespace"] == "ns1"
    owner = meta["ownerReferences"][0]
    assert owner["kind"] == "PipelineRun" and owner["uid"] == "run-uid" and owner["controller"]
    assert owner["apiVersion"] == "datapipelines.io/v1alpha1"
    for labels in (meta["labels"], job["spec"]["template"]["metadata"]["labels"]):
        assert labels["datapipelines.io/run"] == "demo-abcde"
        assert labels["datapipelines.io/connection"] == "demo"
        assert labels["datapipelines.io/batch"] == "b1"
        assert labels["app.kubernetes.io/managed-by"] == "datapipelines-operator"


def test_no_batch_label_without_batch(settings: Settings) -> None:
    job = render_job(connection(), run(), settings)
    assert "datapipelines.io/batch" not in job["metadata"]["labels"]


def test_retries_timeout_ttl(settings: Settings) -> None:
    job = render_job(connection(retries=5, timeoutSeconds=77), run(), settings)
    assert job["spec"]["backoffLimit"] == 5
    assert job["spec"]["activeDeadlineSeconds"] == 77
    assert job["spec"]["ttlSecondsAfterFinished"] == 3600
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert job["spec"]["podReplacementPolicy"] == "Failed"
    rule = job["spec"]["podFailurePolicy"]["rules"][0]
    assert rule["action"] == "FailJob" and rule["onExitCodes"]["values"] == [2]


def test_env_contract(settings: Settings) -> None:
    conn = connection()
    env = env_of(render_job(conn, run(), settings))
    assert env["DATAPIPELINES_CONNECTION_NAME"] == "demo"
    assert env["DATAPIPELINES_RUN_NAME"] == "demo-abcde"
    assert env["DATAPIPELINES_NAMESPACE"] == "ns1"
    assert json.loads(env["DATAPIPELINES_CONNECTION_SPEC"]) == conn["spec"]
    assert env["DATAPIPELINES_SECRETS_DIR"] == "/var/run/datapipelines/secrets"
    assert env["DATAPIPELINES_DATA_DIR"] == "/var/lib/datapipelines"
    assert env["DATAPIPELINES_KUBE_API"] == "https://127.0.0.1:6443"


def test_user_env_cannot_override_contract_env(settings: Settings) -> None:
    conn = connection(
        runner={
            "env": [
                {"name": "X", "value": "1"},
                {"name": "DATAPIPELINES_RUN_NAME", "value": "evil"},
            ]
        }
    )
    env = env_of(render_job(conn, run(), settings))
    assert env["X"] == "1" and env["DATAPIPELINES_RUN_NAME"] == "demo-abcde"


def test_restricted_security_context(settings: Settings) -> None:
    pod = render_job(connection(), run(), settings)["spec"]["template"]["spec"]
    c = pod["containers"][0]
    sc = c["securityContext"]
    assert sc["runAsNonRoot"] and sc["runAsUser"] == 10001
    assert sc["readOnlyRootFilesystem"] and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["fsGroup"] == 10001
    assert c["terminationMessagePolicy"] == "File"
    assert pod["serviceAccountName"] == "datapipelines-runner"


def test_host_network_follows_settings() -> None:
    on = render_job(connection(), run(), Settings(runner_host_network=True))
    off = render_job(connection(), run(), Settings(runner_host_network=False))
    assert on["spec"]["template"]["spec"]["hostNetwork"] is True
    assert on["spec"]["template"]["spec"]["dnsPolicy"] == "ClusterFirstWithHostNet"
    assert off["spec"]["template"]["spec"]["hostNetwork"] is False


def test_image_override_and_resources(settings: Settings) -> None:
    job = render_job(connection(), run(), settings)
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == settings.runner_image
    res = {"limits": {"memory": "512Mi"}}
    job = render_job(connection(runner={"image": "x/y:1", "resources": res}), run(), settings)
    c = job["spec"]["template"]["spec"]["containers"][0]
    assert c["image"] == "x/y:1" and c["resources"] == res


def test_every_secret_ref_is_mounted_as_name_slash_key(settings: Settings) -> None:
    conn = connection(
        source={
            "restApi": {
                "baseUrl": "http://x/",
                "resources": ["items"],
                "auth": {"type": "bearer", "tokenSecretRef": {"name": "src", "key": "token"}},
            }
        },
        destination={
            "type": "postgres",
            "postgres": {
                "host": "h",
                "database": "d",
                "username": "u",
                "passwordSecretRef": {"name": "wh", "key": "password"},
            },
        },
    )
    pod = render_job(conn, run(), settings)["spec"]["template"]["spec"]
    mounts = {m["mountPath"]: m for m in pod["containers"][0]["volumeMounts"]}
    vols = {v["name"]: v for v in pod["volumes"]}
    for name, key in (("src", "token"), ("wh", "password")):
        mount = mounts[f"/var/run/datapipelines/secrets/{name}"]
        assert mount["readOnly"]
        secret = vols[mount["name"]]["secret"]
        assert secret["secretName"] == name
        assert secret["items"] == [{"key": key, "path": key}]


def test_data_dir_and_tmp_are_writable_emptydirs(settings: Settings) -> None:
    pod = render_job(connection(), run(), settings)["spec"]["template"]["spec"]
    mounts = {m["mountPath"]: m["name"] for m in pod["containers"][0]["volumeMounts"]}
    vols = {v["name"]: v for v in pod["volumes"]}
    assert vols[mounts["/var/lib/datapipelines"]] == {"name": "data", "emptyDir": {}}
    assert "emptyDir" in vols[mounts["/tmp"]]


def test_duckdb_volume_mounted_at_dirname(settings: Settings) -> None:
    conn = connection(
        destination={
            "type": "duckdb",
            "duckdb": {
                "path": "/warehouse/demo.duckdb",
                "volume": {"persistentVolumeClaim": {"claimName": "wh"}},
            },
        }
    )
    pod = render_job(conn, run(), settings)["spec"]["template"]["spec"]
    mounts = {m["mountPath"]: m["name"] for m in pod["containers"][0]["volumeMounts"]}
    vols = {v["name"]: v for v in pod["volumes"]}
    assert vols[mounts["/warehouse"]]["persistentVolumeClaim"] == {"claimName": "wh"}


def test_duckdb_default_path_lives_in_data_dir(settings: Settings) -> None:
    pod = render_job(connection(), run(), settings)["spec"]["template"]["spec"]
    assert {v["name"] for v in pod["volumes"]} == {"data", "tmp"}


def test_filesystem_source_volume(settings: Settings) -> None:
    conn = connection(
        type="filesystem",
        source={
            "filesystem": {"bucketUrl": "file:///data/in", "volume": {"hostPath": {"path": "/srv"}}}
        },
    )
    pod = render_job(conn, run(), settings)["spec"]["template"]["spec"]
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["mountPath"] == "/data/in")
    assert mount["readOnly"]


def test_secret_refs_found_everywhere_and_deduplicated() -> None:
    spec = {
        "a": {"xSecretRef": {"name": "s", "key": "k"}},
        "b": [{"ySecretRef": {"name": "s", "key": "k"}}],
    }
    assert secret_refs(spec) == [{"name": "s", "key": "k"}]


def test_short_name() -> None:
    assert short_name("abc", "12") == "abc-12"
    long = short_name("x" * 80, "29000000")
    assert len(long) <= 63 and long.endswith("-29000000")
    assert short_name("x" * 80, "29000000") == long
    assert len(short_name("y" * 100)) == 63
