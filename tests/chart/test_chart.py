"""Rendering tests of the Helm chart with the real `helm` binary (hack/build-binaries.sh)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.chart import CHART, kube_version, load_strict, render_chart, template_command
from tests.support.tools import REPO_ROOT, helm_binary


@pytest.fixture(scope="module")
def helm() -> Path:
    return helm_binary()


def render(helm: Path, *sets: str, namespace: str = "dp") -> list[dict[str, Any]]:
    return render_chart("rel", namespace, *sets)


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def test_chart_crds_are_exactly_the_repository_crds() -> None:
    source = sorted((REPO_ROOT / "crds").glob("*.yaml"))
    copies = sorted((CHART / "files" / "crds").glob("*.yaml"))
    assert source, "crds/ holds no CRD"
    assert [p.name for p in source] == [p.name for p in copies], "run make crds"
    for src, copy in zip(source, copies, strict=True):
        assert src.read_bytes() == copy.read_bytes(), f"{copy} differs: run make crds"


def test_helm_lint_is_clean(helm: Path) -> None:
    result = subprocess.run(
        [str(helm), "lint", "--strict", "--kube-version", kube_version(), str(CHART)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_default_render_has_every_part(helm: Path) -> None:
    docs = render(helm)
    kinds = {d["kind"] for d in docs}
    assert {
        "CustomResourceDefinition",
        "Deployment",
        "Service",
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "Secret",
    } <= kinds
    crds = {d["metadata"]["name"] for d in by_kind(docs, "CustomResourceDefinition")}
    assert crds == {
        "pipelineconnections.datapipelines.io",
        "pipelineruns.datapipelines.io",
        "pipelinebatches.datapipelines.io",
    }
    for crd in by_kind(docs, "CustomResourceDefinition"):
        assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert not by_kind(docs, "Ingress")
    assert not by_kind(docs, "NetworkPolicy")
    assert not by_kind(docs, "ClusterRoleBinding")[1:], "only the discovery binding is cluster-wide"


def test_every_pod_is_restricted(helm: Path) -> None:
    for deploy in by_kind(render(helm), "Deployment"):
        pod = deploy["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert isinstance(pod["securityContext"]["runAsUser"], int)
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        assert pod["hostNetwork"] is False
        for container in pod["containers"]:
            sc = container["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"]["drop"] == ["ALL"]
            assert container["resources"]["requests"]
            assert "livenessProbe" in container


def test_api_key_secret_generated_or_existing(helm: Path) -> None:
    docs = render(helm)
    (secret,) = by_kind(docs, "Secret")
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert secret["data"]["api-key"]
    docs = render(helm, "api.existingSecret=mykeys", "api.existingSecretKey=keys")
    assert not by_kind(docs, "Secret")
    api = next(d for d in by_kind(docs, "Deployment") if d["metadata"]["name"].endswith("-api"))
    env = {e["name"]: e for e in api["spec"]["template"]["spec"]["containers"][0]["env"]}
    ref = env["DATAPIPELINES_API_KEY"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "mykeys", "key": "keys"}


def render_text(helm: Path, *args: str) -> str:
    cmd = template_command("rel", "dp", *args)
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout


def test_gitops_values_render_identically_and_without_a_secret(helm: Path) -> None:
    """Under `helm template` (Argo CD, Flux post-render) nothing can be looked up: with the
    GitOps values the API key comes from a Secret made outside the chart, so two renders are
    byte-identical and no Secret is rendered; the generated-key path would differ each time."""
    gitops = str(CHART.parent / "examples" / "gitops-values.yaml")
    first, second = (render_text(helm, "-f", gitops) for _ in range(2))
    assert first == second
    docs = load_strict(first)
    assert not by_kind(docs, "Secret")
    api = next(d for d in by_kind(docs, "Deployment") if d["metadata"]["name"].endswith("-api"))
    env = {e["name"]: e for e in api["spec"]["template"]["spec"]["containers"][0]["env"]}
    ref = env["DATAPIPELINES_API_KEY"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "datapipelines-api-key", "key": "api-key"}
    assert render_text(helm) != render_text(helm), "the generated key is random per render"


def test_connections_may_not_read_the_api_key_secret(helm: Path) -> None:
    """The sandbox denies the installation's own Secrets to connections' env, both the
    generated one and an existing one."""
    for sets, name in (((), "rel-datapipelines-api-key"), (("api.existingSecret=keys",), "keys")):
        docs = render(helm, *sets)
        op = next(d for d in by_kind(docs, "Deployment") if "-operator" in d["metadata"]["name"])
        env = {
            e["name"]: e.get("value")
            for e in op["spec"]["template"]["spec"]["containers"][0]["env"]
        }
        assert name in env["DATAPIPELINES_SANDBOX_DENIED_SECRETS"].split(","), name
        sandbox = next(
            d
            for d in by_kind(docs, "ValidatingAdmissionPolicy")
            if "sandbox" in d["metadata"]["name"]
        )
        assert f"'{name}'" in yaml.safe_dump(sandbox) or f'"{name}"' in yaml.safe_dump(sandbox)


def named_secrets(node: Any) -> set[str]:
    """Every Secret a rendered manifest names: secretName, secretKeyRef/secretRef names,
    imagePullSecrets."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "secretName" and isinstance(value, str):
                found.add(value)
            elif key in ("secretKeyRef", "secretRef") and isinstance(value, dict):
                found.add(value["name"])
            elif key == "imagePullSecrets":
                found |= {v["name"] for v in value}
            found |= named_secrets(value)
    elif isinstance(node, list):
        for item in node:
            found |= named_secrets(item)
    return found


def test_every_secret_the_chart_names_is_denied_to_connections(helm: Path) -> None:
    """Rendered with every option that names a Secret: each Secret named anywhere in the
    manifests (and each Secret the chart creates) is in the operator's deny list and the
    sandbox policy's."""
    docs = render(
        helm,
        "imagePullSecrets[0].name=pull-creds",
        "api.ingress.enabled=true",
        "api.ingress.tls[0].secretName=api-tls",
        "api.ingress.tls[0].hosts[0]=dp.example",
        "history.existingSecret=archive",
        "api.extraEnv[0].name=X",
        "api.extraEnv[0].valueFrom.secretKeyRef.name=api-extra",
        "api.extraEnv[0].valueFrom.secretKeyRef.key=k",
        "operator.extraEnv[0].name=Y",
        "operator.extraEnv[0].valueFrom.secretKeyRef.name=op-extra",
        "operator.extraEnv[0].valueFrom.secretKeyRef.key=k",
        "sandbox.deniedSecrets[0]=vault-token",
        "api.keysSecret=team-keys",
        "api.console.existingSecret=console-signing",
    )
    manifests = [d for d in docs if d["kind"] != "CustomResourceDefinition"]
    named = named_secrets(manifests) | {d["metadata"]["name"] for d in by_kind(docs, "Secret")}
    assert {"pull-creds", "api-tls", "archive", "api-extra", "op-extra", "team-keys"} <= named
    assert "console-signing" in named
    op = next(d for d in by_kind(docs, "Deployment") if "-operator" in d["metadata"]["name"])
    env = {
        e["name"]: e.get("value") for e in op["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    denied = set(env["DATAPIPELINES_SANDBOX_DENIED_SECRETS"].split(","))
    assert named | {"vault-token"} <= denied, named - denied
    sandbox = next(
        d for d in by_kind(docs, "ValidatingAdmissionPolicy") if "sandbox" in d["metadata"]["name"]
    )
    (variable,) = [v for v in sandbox["spec"]["variables"] if v["name"] == "denied"]
    assert set(yaml.safe_load(variable["expression"])) == denied


def test_runner_pods_are_bounded_by_default(helm: Path) -> None:
    docs = render(helm)
    op = next(d for d in by_kind(docs, "Deployment") if "-operator" in d["metadata"]["name"])
    env = {
        e["name"]: e.get("value") for e in op["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    resources = yaml.safe_load(env["DATAPIPELINES_RUNNER_RESOURCES"])
    assert resources["limits"]["memory"] and resources["limits"]["ephemeral-storage"]
    assert resources["requests"]["ephemeral-storage"]
    assert env["DATAPIPELINES_RUNNER_SCRATCH_SIZE_LIMIT"] == "20Gi"
    maximum = yaml.safe_load(env["DATAPIPELINES_SANDBOX_MAX_RESOURCES"])
    assert maximum == {"limits": {"cpu": "8", "memory": "32Gi", "ephemeral-storage": "200Gi"}}
    sandbox = next(
        d for d in by_kind(docs, "ValidatingAdmissionPolicy") if "sandbox" in d["metadata"]["name"]
    )
    rules = " ".join(
        " ".join(v["messageExpression"].split()) for v in sandbox["spec"]["validations"]
    )
    for key in ("cpu", "memory", "ephemeral-storage"):
        assert f"more {key} than this installation allows" in rules


def test_local_cluster_values_bind_loopback(helm: Path) -> None:
    docs = render(helm, "hostNetwork=true", "kubeApiServer=https://127.0.0.1:6443")
    for deploy in by_kind(docs, "Deployment"):
        pod = deploy["spec"]["template"]["spec"]
        assert pod["hostNetwork"] is True
        env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
        assert "127.0.0.1" in (
            env.get("DATAPIPELINES_API_HOST"),
            env.get("DATAPIPELINES_LISTEN_HOST"),
        )
        assert env["DATAPIPELINES_KUBE_API"] == "https://127.0.0.1:6443"
        # in-cluster clients must not go to the `kubernetes` Service IP (no kube-proxy there)
        assert env["KUBERNETES_SERVICE_HOST"] == "127.0.0.1"
        assert env["KUBERNETES_SERVICE_PORT"] == "6443"
    operator = next(d for d in by_kind(docs, "Deployment") if "operator" in d["metadata"]["name"])
    env = {
        e["name"]: e.get("value")
        for e in operator["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["DATAPIPELINES_RUNNER_HOST_NETWORK"] == "true"


def test_cluster_wide_mode_uses_cluster_roles(helm: Path) -> None:
    docs = render(helm, "singleNamespace=false")
    names = {d["metadata"]["name"] for d in by_kind(docs, "ClusterRole")}
    assert {"rel-datapipelines-operator", "rel-datapipelines-api"} <= names


def test_optional_parts(helm: Path) -> None:
    docs = render(
        helm,
        "api.ingress.enabled=true",
        "api.ingress.className=nginx",
        "networkPolicy.enabled=true",
        "crds.install=false",
        "history.existingSecret=archive",
    )
    (ingress,) = by_kind(docs, "Ingress")
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert len(by_kind(docs, "NetworkPolicy")) == 2
    assert not by_kind(docs, "CustomResourceDefinition")
    for deploy in by_kind(docs, "Deployment"):
        env = {e["name"]: e for e in deploy["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert env["DATAPIPELINES_HISTORY_DSN"]["valueFrom"]["secretKeyRef"]["name"] == "archive"


@pytest.mark.parametrize(
    "bad",
    ["logFormat=xml", "api.port=0", "image.pullPolicy=Sometimes", "operator.replicas=-1"],
)
def test_schema_rejects_bad_values(helm: Path, bad: str) -> None:
    args = template_command("rel", "default", "--set", bad)
    result = subprocess.run(args, capture_output=True, text=True)
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr


def test_runner_status_policy_guards_every_operator_field(helm: Path) -> None:
    """The runner may change only status.progress and status.runnerResult: the policy compares
    every other field of the run's status (from the typed model) with its old value, so a field
    added to the model is guarded or this test fails."""
    import re

    from datapipelines.resources.run import RunStatus

    docs = render(helm)
    (policy,) = [
        d
        for d in by_kind(docs, "ValidatingAdmissionPolicy")
        if d["metadata"]["name"].endswith("-runner-status")
    ]
    text = " ".join(v["expression"] for v in policy["spec"]["validations"])
    guarded = set(re.findall(r"object\.\?status\.\?(\w+)\s*==", text))
    fields = {f.alias or name for name, f in RunStatus.model_fields.items()}
    assert guarded == fields - {"progress", "runnerResult"}


def test_access_options(helm: Path) -> None:
    """Scoped keys mount their Secret as a directory (rotation without restart); Kubernetes
    auth adds only the review rights to the API; the user roles are there to bind."""
    plain = render(helm)
    plain_names = {d["metadata"]["name"] for d in by_kind(plain, "ClusterRole")}
    assert {"rel-datapipelines-dp-viewer", "rel-datapipelines-dp-run-operator"} <= plain_names
    assert "rel-datapipelines-dp-api-auth" not in plain_names
    docs = render(helm, "api.keysSecret=team-keys", "api.kubernetesAuth.enabled=true")
    api = next(d for d in by_kind(docs, "Deployment") if d["metadata"]["name"].endswith("-api"))
    pod = api["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["DATAPIPELINES_API_KEYS_FILE"] == "/etc/datapipelines/keys/keys.yaml"
    assert env["DATAPIPELINES_KUBERNETES_AUTH"] == "true"
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "api-keys")
    assert "subPath" not in mount
    volume = next(v for v in pod["volumes"] if v["name"] == "api-keys")
    assert volume["secret"]["secretName"] == "team-keys"
    roles = {d["metadata"]["name"]: d for d in by_kind(docs, "ClusterRole")}
    auth_rules = roles["rel-datapipelines-dp-api-auth"]["rules"]
    assert {r["resources"][0] for r in auth_rules} == {"tokenreviews", "subjectaccessreviews"}
    assert all(r["verbs"] == ["create"] for r in auth_rules)
    viewer = roles["rel-datapipelines-dp-viewer"]["rules"]
    assert all(set(r["verbs"]) <= {"get", "list", "watch"} for r in viewer)
    without = {
        d["metadata"]["name"] for d in by_kind(render(helm, "rbac.userRoles=false"), "ClusterRole")
    }
    assert not any(name.endswith("-viewer") for name in without)


def test_console_values(helm: Path) -> None:
    def api_env(*sets: str) -> dict[str, object]:
        docs = render(helm, *sets)
        api = next(d for d in by_kind(docs, "Deployment") if d["metadata"]["name"].endswith("-api"))
        return {e["name"]: e for e in api["spec"]["template"]["spec"]["containers"][0]["env"]}

    env = api_env()
    assert env["DATAPIPELINES_CONSOLE"]["value"] == "true"  # type: ignore[index]
    assert "DATAPIPELINES_CONSOLE_SECURE_COOKIE" not in env
    off = api_env("api.console.enabled=false", "api.console.secureCookie=true")
    assert off["DATAPIPELINES_CONSOLE"]["value"] == "false"  # type: ignore[index]
    assert off["DATAPIPELINES_CONSOLE_SECURE_COOKIE"]["value"] == "true"  # type: ignore[index]


def test_one_release_name_in_two_namespaces_shares_no_cluster_role(helm: Path) -> None:
    """Teams install the chart under one release name in their own namespaces: the
    cluster-scoped objects it makes by default must not collide."""
    names = []
    for ns in ("team-a", "team-b"):
        docs = render(helm, "api.kubernetesAuth.enabled=true", namespace=ns)
        kinds = ("ClusterRole", "ClusterRoleBinding")
        names.append({d["metadata"]["name"] for d in docs if d["kind"] in kinds})
    assert names[0] and not names[0] & names[1], names[0] & names[1]


def test_service_account_annotations(helm: Path) -> None:
    docs = render(
        helm,
        "serviceAccount.operatorAnnotations.eks\\.amazonaws\\.com/role-arn=arn:op",
        "serviceAccount.apiAnnotations.team=api",
        "runner.serviceAccount.annotations.iam\\.gke\\.io/gcp-service-account=runner@p",
    )
    by_component = {
        d["metadata"]["labels"]["app.kubernetes.io/component"]: d.get("metadata", {})
        for d in by_kind(docs, "ServiceAccount")
    }
    assert by_component["operator"]["annotations"] == {"eks.amazonaws.com/role-arn": "arn:op"}
    assert by_component["api"]["annotations"] == {"team": "api"}
    assert by_component["runner"]["annotations"] == {"iam.gke.io/gcp-service-account": "runner@p"}
    assert "annotations" not in by_kind(render(helm), "ServiceAccount")[0]["metadata"]


@pytest.mark.parametrize(
    "sets",
    [
        (),
        ("singleNamespace=false", "operator.replicas=2", "networkPolicy.enabled=true"),
        (
            "operator.shards[0].name=a",
            "operator.shards[0].selector=x=a",
            "api.ingress.enabled=true",
        ),
        ("api.keysSecret=k", "api.kubernetesAuth.enabled=true", "history.existingSecret=h"),
    ],
)
def test_every_manifest_parses_strictly(helm: Path, sets: tuple[str, ...]) -> None:
    args = template_command("rel", "dp")
    for item in sets:
        args += ["--set", item]
    out = subprocess.run(args, capture_output=True, text=True, check=True, timeout=60).stdout
    assert load_strict(out)


def test_two_shards_of_one_name_are_refused(helm: Path) -> None:
    args = template_command("rel", "dp")
    for i in (0, 1):
        args += [
            "--set",
            f"operator.shards[{i}].name=a",
            "--set",
            f"operator.shards[{i}].selector=s={i}",
        ]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and 'the name "a" is used twice' in proc.stderr
