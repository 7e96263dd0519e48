"""A connection cannot become an arbitrary pod: the chart's sandbox policy refuses, at
admission, what the installation does not allow — naming the rule — and the API may delete
only the Job of a run."""

from __future__ import annotations

import json
import tempfile
from typing import Any

import pytest

from tests.integration.trust.chartkit import Release
from tests.support.cluster import kubectl
from tests.support.kube import kubectl_apply, kubectl_json

pytestmark = pytest.mark.cluster

API_KEY_SECRET = "trust-datapipelines-api-key"


def connection(ns: str, name: str, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "rest_api",
        "schemaName": "s1",
        "source": {"restApi": {"baseUrl": "http://127.0.0.1:9/", "resources": [{"name": "x"}]}},
        "destination": {"duckdb": {"path": "/tmp/x.duckdb", "ephemeral": True}},
    }
    body.update(spec)
    return {
        "apiVersion": "datapipelines.io/v1alpha1",
        "kind": "PipelineConnection",
        "metadata": {"name": name, "namespace": ns},
        "spec": body,
    }


def create(obj: dict[str, Any]) -> tuple[int, str]:
    with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
        json.dump(obj, f)
        f.flush()
        proc = kubectl("create", "-f", f.name, check=False)
    return proc.returncode, proc.stderr


CASES = [
    pytest.param(
        {"runner": {"image": "evil.example/miner:1"}},
        "spec.runner.image evil.example/miner:1 is not allowed",
        "sandbox.allowedImages",
        id="image",
    ),
    pytest.param(
        {
            "destination": {
                "duckdb": {"path": "/data/x.duckdb", "volume": {"hostPath": {"path": "/etc"}}}
            }
        },
        "of a type not allowed here",
        "sandbox.volumeTypes",
        id="hostPath-volume",
    ),
    pytest.param(
        {
            "type": "filesystem",
            "source": {
                "filesystem": {"bucketUrl": "/data/in", "volume": {"hostPath": {"path": "/"}}}
            },
        },
        "of a type not allowed here",
        "sandbox.volumeTypes",
        id="hostPath-source",
    ),
    pytest.param(
        {
            "runner": {
                "env": [
                    {
                        "name": "HTTPS_PROXY",
                        "valueFrom": {"secretKeyRef": {"name": API_KEY_SECRET, "key": "api-key"}},
                    }
                ]
            }
        },
        "spec.runner.env may read only the Secrets (none)",
        "sandbox.envSecrets",
        id="env-secret",
    ),
    pytest.param(
        {
            "source": {
                "restApi": {
                    "baseUrl": "http://evil.example/",
                    "auth": {
                        "type": "bearer",
                        "tokenSecretRef": {"name": API_KEY_SECRET, "key": "api-key"},
                    },
                    "resources": [{"name": "x"}],
                }
            }
        },
        "references a Secret of the installation",
        API_KEY_SECRET,
        id="installation-secret",
    ),
    pytest.param(
        {
            "type": "sql_database",
            "source": {
                "sqlDatabase": {
                    "credentialsSecretRef": {"name": "sh.helm.release.v1.trust.v1", "key": "r"},
                    "tables": ["t"],
                }
            },
        },
        "references a Secret of the installation",
        "a Helm release",
        id="helm-release-secret",
    ),
    pytest.param(
        {
            "type": "hubspot",
            "source": {"hubspot": {"tokenSecretRef": {"name": API_KEY_SECRET, "key": "api-key"}}},
        },
        "references a Secret of the installation",
        API_KEY_SECRET,
        id="installation-secret-as-a-saas-token",
    ),
    pytest.param(
        {"runner": {"resources": {"limits": {"memory": "64Gi"}}}},
        "asks for more memory than this installation allows",
        "sandbox.maxResources",
        id="resources-above-maximum",
    ),
    pytest.param(
        {"runner": {"resources": {"requests": {"ephemeral-storage": "1Ti"}}}},
        "asks for more ephemeral-storage than this installation allows",
        "200Gi",
        id="ephemeral-storage-above-maximum",
    ),
]


@pytest.mark.parametrize(("spec", "message", "names"), CASES)
def test_the_sandbox_refuses_at_admission(
    release: Release, spec: dict, message: str, names: str
) -> None:
    code, err = create(connection(release.namespace, "bad", **spec))
    assert code != 0
    assert "ValidatingAdmissionPolicy" in err and message in err and names in err, err
    assert kubectl("get", "pconn", "bad", "-n", release.namespace, check=False).returncode != 0


#: Refused by the CRD's own rules (no chart policy needed), naming the field and the rule.
CRD_CASES = [
    pytest.param(
        {
            "type": "filesystem",
            "source": {
                "filesystem": {"bucketUrl": "/data/py", "volume": {"configMap": {"name": "py"}}}
            },
            "runner": {"env": [{"name": "PYTHONPATH", "value": "/data/py"}]},
        },
        "runner.env PYTHONPATH: runner.env may set only",
        id="PYTHONPATH-onto-a-configMap",
    ),
    pytest.param(
        {"runner": {"env": [{"name": "LD_PRELOAD", "value": "/data/x.so"}]}},
        "runner.env LD_PRELOAD: runner.env may set only",
        id="LD_PRELOAD",
    ),
    pytest.param(
        {
            "type": "filesystem",
            "source": {"filesystem": {"bucketUrl": "/data/../etc", "volume": {"emptyDir": {}}}},
        },
        "filesystem.bucketUrl must name an absolute, normalised path",
        id="dotdot-mount-path",
    ),
    pytest.param(
        {"destination": {"duckdb": {"path": "/var/lib/datapipelines/warehouse//warehouse.duckdb"}}},
        "destination.duckdb.path must be an absolute, normalised path",
        id="double-slash-duckdb-path",
    ),
]


@pytest.mark.parametrize(("spec", "message"), CRD_CASES)
def test_hostile_paths_and_env_are_refused_by_the_crd(
    release: Release, spec: dict, message: str
) -> None:
    code, err = create(connection(release.namespace, "bad", **spec))
    assert code != 0 and message in err, err
    assert kubectl("get", "pconn", "bad", "-n", release.namespace, check=False).returncode != 0


def test_the_sandbox_admits_the_default_runner_and_allowed_volumes(release: Release) -> None:
    ok = connection(
        release.namespace,
        "good",
        runner={"image": "localhost/datapipelines-runner:v2"},
        destination={
            "duckdb": {
                "path": "/data/x.duckdb",
                "volume": {"persistentVolumeClaim": {"claimName": "data"}},
            }
        },
    )
    code, err = create(ok)
    assert code == 0, err


def job(ns: str, name: str, owner: dict[str, Any] | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": ns}
    if owner is not None:
        meta["ownerReferences"] = [
            {
                "apiVersion": "datapipelines.io/v1alpha1",
                "kind": "PipelineRun",
                "name": owner["metadata"]["name"],
                "uid": owner["metadata"]["uid"],
                "controller": True,
            }
        ]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta,
        "spec": {
            "suspend": True,  # never runs
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {"name": "x", "image": "localhost/datapipelines-never-pulled:none"}
                    ],
                }
            },
        },
    }


def test_the_api_deletes_only_a_runs_job(release: Release) -> None:
    ns, api = release.namespace, release.sa("api")
    kubectl_apply(
        {
            "apiVersion": "datapipelines.io/v1alpha1",
            "kind": "PipelineRun",
            "metadata": {"name": "r-owned", "namespace": ns},
            "spec": {"connectionName": "c1"},
        }
    )
    run = kubectl_json("get", "prun", "r-owned", "-n", ns)
    kubectl_apply([job(ns, "foreign", None), job(ns, "r-owned", run)])
    refused = kubectl(f"--as={api}", "delete", "job", "foreign", "-n", ns, check=False)
    assert refused.returncode != 0
    assert "may delete only the Job of a PipelineRun" in refused.stderr, refused.stderr
    assert kubectl("get", "job", "foreign", "-n", ns, check=False).returncode == 0
    allowed = kubectl(f"--as={api}", "delete", "job", "r-owned", "-n", ns, check=False)
    assert allowed.returncode == 0, allowed.stderr
