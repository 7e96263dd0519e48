"""Every value combination of the chart that changes what is rendered, parsed strictly and
checked for what each toggle promises: a PodDisruptionBudget, Service or ServiceMonitor only
when enabled, each selecting the pods (or Service) it is meant for; the image tags defaulting to
the chart's appVersion; the runner's default resources reaching the operator's settings."""

from __future__ import annotations

import functools
import json
import subprocess
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.chart import (
    CHART,
    LOCAL_IMAGE_VALUES,
    kube_version,
    render_chart,
    template_command,
)
from tests.support.tools import helm_binary

Doc = dict[str, Any]

CHART_META = yaml.safe_load((CHART / "Chart.yaml").read_text())
VALUES = yaml.safe_load((CHART / "values.yaml").read_text())
APP_VERSION = CHART_META["appVersion"]

SHARDS = (
    "operator.shards[0].name=a",
    "operator.shards[0].selector=datapipelines.io/shard=a",
    "operator.shards[1].name=b",
    "operator.shards[1].selector=datapipelines.io/shard=b",
)
PDBS = ("operator.podDisruptionBudget.enabled=true", "api.podDisruptionBudget.enabled=true")
MONITOR = (
    "metrics.serviceMonitor.enabled=true",
    "metrics.serviceMonitor.interval=15s",
    "metrics.serviceMonitor.scrapeTimeout=10s",
    "metrics.serviceMonitor.labels.release=prometheus",
)

#: name -> --set items. Each is rendered, parsed strictly, linted and checked.
COMBINATIONS: dict[str, tuple[str, ...]] = {
    "defaults": (),
    "local-images": LOCAL_IMAGE_VALUES,
    "ingress": (
        "api.ingress.enabled=true",
        "api.ingress.className=nginx",
        "api.ingress.annotations.cert-manager\\.io/cluster-issuer=letsencrypt",
        "api.ingress.tls[0].secretName=api-tls",
        "api.ingress.tls[0].hosts[0]=datapipelines.local",
    ),
    "network-policy": (
        "networkPolicy.enabled=true",
        "networkPolicy.apiFrom[0].podSelector.matchLabels.app=client",
    ),
    "pdbs": PDBS,
    "pdbs-min-available": (
        *PDBS,
        "api.replicas=3",
        "api.podDisruptionBudget.minAvailable=2",
        "operator.replicas=2",
        "operator.podDisruptionBudget.minAvailable=1",
    ),
    "pdbs-percentage": (
        *PDBS,
        "api.podDisruptionBudget.maxUnavailable=50%",
        "operator.podDisruptionBudget.minAvailable=50%",
    ),
    "metrics-service": ("metrics.service.enabled=true",),
    "service-monitor": MONITOR,
    "kubernetes-auth": ("api.kubernetesAuth.enabled=true", "api.kubernetesAuth.cacheSeconds=30"),
    "console-off": ("api.console.enabled=false",),
    "console-on": (
        "api.console.enabled=true",
        "api.console.secureCookie=true",
        "api.console.existingSecret=console-signing",
    ),
    "keys-secret": ("api.keysSecret=team-keys", "api.existingSecret=admin-key"),
    "no-user-roles": ("rbac.userRoles=false",),
    "no-rbac-no-service-accounts": (
        "rbac.create=false",
        "serviceAccount.create=false",
        "serviceAccount.operatorName=op",
        "serviceAccount.apiName=api",
        "runner.serviceAccount.create=false",
    ),
    "shards": SHARDS,
    "shard-selector": ("operator.shardSelector=datapipelines.io/shard=x",),
    "archive": ("history.existingSecret=archive", "history.existingSecretKey=url"),
    "cluster-wide": ("singleNamespace=false", "namespaces[0]=team-a"),
    "watch-list": ("singleNamespace=false", "watchNamespace=team-a\\,team-b"),
    "warehouse-off": ("warehouse.persistence.enabled=false",),
    "warehouse-existing-claim": ("warehouse.persistence.existingClaim=mine",),
    "warehouse-host-path": (
        "warehouse.persistence.hostPath=/srv/dp",
        "warehouse.persistence.storageClass=-",
    ),
    "no-admission-policy": ("sandbox.admissionPolicy=false", "sandbox.allowHostPath=true"),
    "no-crds": ("crds.install=false", "crds.keep=false"),
    "local-cluster": (
        "hostNetwork=true",
        "kubeApiServer=https://127.0.0.1:6443",
        "api.replicas=2",
        *LOCAL_IMAGE_VALUES,
    ),
    "everything": (
        *SHARDS,
        *PDBS,
        *MONITOR,
        "operator.replicas=2",
        "api.replicas=2",
        "networkPolicy.enabled=true",
        "api.ingress.enabled=true",
        "api.kubernetesAuth.enabled=true",
        "api.keysSecret=team-keys",
        "history.existingSecret=archive",
        "singleNamespace=false",
        "imagePullSecrets[0].name=pull",
    ),
}


@pytest.fixture(scope="module")
def helm() -> Path:
    return helm_binary()


@functools.cache
def rendered_combinations() -> dict[str, list[Doc]]:
    """Each combination rendered once per test session (these tests and the dry run on the
    apiserver share them), parsed strictly (render_chart refuses a key written twice); helm
    processes side by side. Callers that change the documents copy them first."""
    with ThreadPoolExecutor(4) as pool:
        docs = pool.map(lambda sets: render_chart("rel", "dp", *sets), COMBINATIONS.values())
        return dict(zip(COMBINATIONS, docs, strict=True))


@pytest.fixture(scope="module")
def renders() -> dict[str, list[Doc]]:
    return rendered_combinations()


def by_kind(docs: list[Doc], kind: str) -> list[Doc]:
    return [d for d in docs if d["kind"] == kind]


def pod_labels(deploy: Doc) -> dict[str, str]:
    labels: dict[str, str] = deploy["spec"]["template"]["metadata"]["labels"]
    return labels


def selects(match: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in match.items())


def deployments_selected(docs: list[Doc], match: dict[str, str]) -> list[str]:
    return [
        d["metadata"]["name"] for d in by_kind(docs, "Deployment") if selects(match, pod_labels(d))
    ]


def container_env(deploy: Doc) -> dict[str, str]:
    return {
        e["name"]: e["value"]
        for e in deploy["spec"]["template"]["spec"]["containers"][0]["env"]
        if "value" in e
    }


def component(docs: list[Doc], name: str) -> list[Doc]:
    return [
        d
        for d in by_kind(docs, "Deployment")
        if d["metadata"]["labels"]["app.kubernetes.io/component"] == name
    ]


def sets_of(name: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in COMBINATIONS[name])


@pytest.mark.parametrize("name", COMBINATIONS)
def test_every_combination_renders_well_formed_objects(
    renders: dict[str, list[Doc]], name: str
) -> None:
    docs = renders[name]
    assert docs
    for doc in docs:
        assert doc.get("apiVersion") and doc.get("kind"), doc
        assert doc["metadata"].get("name"), doc
    identities = Counter(
        (d["apiVersion"], d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"])
        for d in docs
    )
    assert not [k for k, n in identities.items() if n > 1], "an object rendered twice"
    # every Service and NetworkPolicy selects pods of the release
    for svc in by_kind(docs, "Service"):
        assert deployments_selected(docs, svc["spec"]["selector"]), svc["metadata"]["name"]
    for policy in by_kind(docs, "NetworkPolicy"):
        assert deployments_selected(docs, policy["spec"]["podSelector"]["matchLabels"])


@pytest.mark.parametrize("name", COMBINATIONS)
def test_pod_disruption_budgets_only_when_enabled_and_one_per_pod(
    renders: dict[str, list[Doc]], name: str
) -> None:
    docs = renders[name]
    values = sets_of(name)
    pdbs = by_kind(docs, "PodDisruptionBudget")
    operator_on = values.get("operator.podDisruptionBudget.enabled") == "true"
    api_on = values.get("api.podDisruptionBudget.enabled") == "true"
    operators = component(docs, "operator")
    assert len(pdbs) == operator_on * len(operators) + api_on
    for pdb in pdbs:
        assert pdb["apiVersion"] == "policy/v1"
        spec = pdb["spec"]
        assert len({"minAvailable", "maxUnavailable"} & spec.keys()) == 1, spec
        # each budget covers the pods of exactly one Deployment
        (target,) = deployments_selected(docs, spec["selector"]["matchLabels"])
        assert target.removeprefix("rel-datapipelines-").startswith(
            pdb["metadata"]["labels"]["app.kubernetes.io/component"]
        )
    # the eviction API refuses a pod covered by two budgets
    for deploy in by_kind(docs, "Deployment"):
        covering = [
            p for p in pdbs if selects(p["spec"]["selector"]["matchLabels"], pod_labels(deploy))
        ]
        assert len(covering) <= 1, deploy["metadata"]["name"]


def test_pod_disruption_budget_values(renders: dict[str, list[Doc]]) -> None:
    def budgets(name: str) -> dict[str, dict[str, Any]]:
        return {
            p["metadata"]["labels"]["app.kubernetes.io/component"]: {
                k: v for k, v in p["spec"].items() if k != "selector"
            }
            for p in by_kind(renders[name], "PodDisruptionBudget")
        }

    assert budgets("pdbs") == {"operator": {"maxUnavailable": 1}, "api": {"maxUnavailable": 1}}
    assert budgets("pdbs-min-available") == {
        "operator": {"minAvailable": 1},
        "api": {"minAvailable": 2},
    }
    assert budgets("pdbs-percentage") == {
        "operator": {"minAvailable": "50%"},
        "api": {"maxUnavailable": "50%"},
    }
    shards = by_kind(renders["everything"], "PodDisruptionBudget")
    names = sorted(p["metadata"]["name"] for p in shards)
    assert names == [
        "rel-datapipelines-api",
        "rel-datapipelines-operator-a",
        "rel-datapipelines-operator-b",
    ]


def test_pod_disruption_budget_with_both_bounds_is_refused() -> None:
    cmd = template_command(
        "rel",
        "dp",
        "--set",
        "api.podDisruptionBudget.enabled=true",
        "--set",
        "api.podDisruptionBudget.minAvailable=1",
        "--set",
        "api.podDisruptionBudget.maxUnavailable=1",
    )
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "api.podDisruptionBudget: set minAvailable or maxUnavailable, not both" in proc.stderr


@pytest.mark.parametrize("name", COMBINATIONS)
def test_metrics_service_and_monitors_only_when_enabled(
    renders: dict[str, list[Doc]], name: str
) -> None:
    docs = renders[name]
    values = sets_of(name)
    monitor_on = values.get("metrics.serviceMonitor.enabled") == "true"
    service_on = monitor_on or values.get("metrics.service.enabled") == "true"
    services = {s["metadata"]["name"]: s for s in by_kind(docs, "Service")}
    metrics = services.get("rel-datapipelines-operator-metrics")
    assert (metrics is not None) == service_on
    monitors = by_kind(docs, "ServiceMonitor")
    assert len(monitors) == 2 * monitor_on
    if metrics is not None:
        (port,) = metrics["spec"]["ports"]
        assert port["port"] == VALUES["operator"]["metricsPort"]
        selected = deployments_selected(docs, metrics["spec"]["selector"])
        assert selected == [d["metadata"]["name"] for d in component(docs, "operator")]
        for deploy in component(docs, "operator"):
            ports = deploy["spec"]["template"]["spec"]["containers"][0]["ports"]
            assert {"name": "metrics", "containerPort": port["port"]} in ports
    for monitor in monitors:
        assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
        assert monitor["metadata"]["labels"]["release"] == "prometheus"
        spec = monitor["spec"]
        assert spec["namespaceSelector"] == {"matchNames": ["dp"]}
        # the monitor selects exactly one Service of the release, by a port that Service has,
        # whose target is a named container port of the pods behind it
        match = spec["selector"]["matchLabels"]
        (svc,) = [s for s in services.values() if selects(match, s["metadata"]["labels"])]
        (endpoint,) = spec["endpoints"]
        assert endpoint == {
            "port": endpoint["port"],
            "path": "/metrics",
            "interval": "15s",
            "scrapeTimeout": "10s",
        }
        (svc_port,) = [p for p in svc["spec"]["ports"] if p["name"] == endpoint["port"]]
        for deploy in by_kind(docs, "Deployment"):
            if selects(svc["spec"]["selector"], pod_labels(deploy)):
                names = {
                    p["name"] for p in deploy["spec"]["template"]["spec"]["containers"][0]["ports"]
                }
                assert svc_port["targetPort"] in names
    if monitors:
        kinds = {m["metadata"]["labels"]["app.kubernetes.io/component"] for m in monitors}
        assert kinds == {"operator", "api"}


def test_service_monitor_labels_may_name_a_chart_label() -> None:
    docs = render_chart(
        "rel",
        "dp",
        "metrics.serviceMonitor.enabled=true",
        "metrics.serviceMonitor.labels.app\\.kubernetes\\.io/part-of=monitoring",
    )
    for monitor in by_kind(docs, "ServiceMonitor"):
        assert monitor["metadata"]["labels"]["app.kubernetes.io/part-of"] == "monitoring"
        assert "scrapeTimeout" not in monitor["spec"]["endpoints"][0]


@pytest.mark.parametrize("name", COMBINATIONS)
def test_image_tags_default_to_the_app_version(renders: dict[str, list[Doc]], name: str) -> None:
    values = sets_of(name)
    app = (
        f"{values.get('image.repository', VALUES['image']['repository'])}"
        f":{values.get('image.tag') or APP_VERSION}"
    )
    runner = (
        f"{values.get('runner.image.repository', VALUES['runner']['image']['repository'])}"
        f":{values.get('runner.image.tag') or APP_VERSION}"
    )
    for deploy in by_kind(renders[name], "Deployment"):
        (container,) = deploy["spec"]["template"]["spec"]["containers"]
        assert container["image"] == app
        assert container["imagePullPolicy"] == "IfNotPresent"
    for deploy in component(renders[name], "operator"):
        env = container_env(deploy)
        assert env["DATAPIPELINES_RUNNER_IMAGE"] == runner
        assert env["DATAPIPELINES_RUNNER_IMAGE_PULL_POLICY"] == "IfNotPresent"


def test_the_defaults_are_the_app_version_and_local_installs_use_the_local_images(
    renders: dict[str, list[Doc]],
) -> None:
    assert VALUES["image"]["tag"] == "" and VALUES["runner"]["image"]["tag"] == ""
    (api,) = component(renders["defaults"], "api")
    assert api["spec"]["template"]["spec"]["containers"][0]["image"].endswith(f":{APP_VERSION}")
    (api,) = component(renders["local-images"], "api")
    assert (
        api["spec"]["template"]["spec"]["containers"][0]["image"] == "localhost/datapipelines:dev"
    )
    (operator,) = component(renders["local-images"], "operator")
    env = container_env(operator)
    assert env["DATAPIPELINES_RUNNER_IMAGE"] == "localhost/datapipelines-runner:dev"


def test_runner_resources_reach_the_operator_settings(
    renders: dict[str, list[Doc]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The defaults of runner.resources are what the operator's Settings read from the rendered
    environment: requests (never a BestEffort pod, which a ResourceQuota requiring requests
    refuses), limits at or above the requests, all within sandbox.maxResources."""
    from datapipelines.operator.config import Settings
    from datapipelines.resources import quantity

    (operator,) = component(renders["defaults"], "operator")
    for key, value in container_env(operator).items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    defaults = VALUES["runner"]["resources"]
    assert settings.runner_resources == defaults
    assert settings.sandbox_max_resources == VALUES["sandbox"]["maxResources"]
    assert settings.runner_image == f"{VALUES['runner']['image']['repository']}:{APP_VERSION}"
    requests, limits = defaults["requests"], defaults["limits"]
    assert {"cpu", "memory"} <= requests.keys()
    assert "memory" in limits
    for key, limit in limits.items():
        if key in requests:
            assert quantity.parse(requests[key]) <= quantity.parse(limit), key
    assert quantity.over(defaults, settings.sandbox_max_resources) == []
    effective = quantity.merged(settings.runner_resources, None)
    assert effective["requests"]["cpu"] and effective["requests"]["memory"]
    # values given at install time reach the operator too, numbers (which is what --set makes
    # of "2") as the strings its settings take
    docs = render_chart(
        "rel",
        "dp",
        "runner.resources.limits.cpu=2",
        "runner.resources.requests.cpu=0.5",
        "sandbox.maxResources.limits.cpu=16",
    )
    (operator,) = component(docs, "operator")
    for key, value in container_env(operator).items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    assert settings.runner_resources["limits"] == {**limits, "cpu": "2"}
    assert settings.runner_resources["requests"] == {**requests, "cpu": "0.5"}
    assert settings.sandbox_max_resources["limits"]["cpu"] == "16"


def test_kube_version_below_1_30_is_refused() -> None:
    cmd = template_command("rel", "dp")
    old = [
        *cmd[: cmd.index("--kube-version") + 1],
        "1.29.9",
        *cmd[cmd.index("--kube-version") + 2 :],
    ]
    proc = subprocess.run(old, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "kubeVersion" in proc.stderr, proc.stderr
    assert CHART_META["kubeVersion"] == ">=1.30.0-0"
    assert kube_version().startswith("v1.")


@pytest.mark.parametrize(
    "bad",
    [
        "operator.podDisruptionBudget.minAvailable=lots",
        "api.podDisruptionBudget.maxUnavailable=-1",
        "api.podDisruptionBudget.surge=1",
        "metrics.serviceMonitor.interval=30",
        "metrics.serviceMonitor.scrape=1",
        "metrics.service.port=9",
    ],
)
def test_schema_rejects_bad_new_values(bad: str) -> None:
    proc = subprocess.run(
        template_command("rel", "dp", "--set", bad), capture_output=True, text=True, timeout=60
    )
    assert proc.returncode != 0
    assert "values don't meet the specifications of the schema" in proc.stderr, proc.stderr


@pytest.mark.parametrize("name", ["defaults", "pdbs-percentage", "service-monitor", "everything"])
def test_helm_lint_strict_with_the_new_values(helm: Path, name: str) -> None:
    args = [str(helm), "lint", "--strict", "--kube-version", kube_version(), str(CHART)]
    for item in COMBINATIONS[name]:
        args += ["--set", item]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_value_in_values_yaml_is_typed_in_the_schema() -> None:
    """values.yaml and values.schema.json describe the same keys (the schema is strict: a key
    missing from it would be refused at install)."""
    schema = json.loads((CHART / "values.schema.json").read_text())

    def missing(values: Any, node: dict[str, Any], path: str) -> list[str]:
        if not isinstance(values, dict) or "properties" not in node:
            return []
        out = []
        for key, value in values.items():
            if key not in node["properties"]:
                out.append(f"{path}{key}")
            else:
                out += missing(value, node["properties"][key], f"{path}{key}.")
        return out

    assert missing(VALUES, schema, "") == []


def test_local_installs_name_the_locally_built_images() -> None:
    """The chart's tags default to its appVersion, the local builds are tagged dev: every
    local `helm upgrade --install` sets the tags (tests/support/release.py uses
    LOCAL_IMAGE_VALUES; hack/demo.sh spells them out)."""
    assert {"image.tag=dev", "runner.image.tag=dev"} <= set(LOCAL_IMAGE_VALUES)
    demo = (CHART.parents[2] / "hack" / "demo.sh").read_text()
    installs = demo.split('"$HELM" upgrade --install')[1:]
    assert installs
    for install in installs:
        command = install.split("--wait")[0]
        assert "--set image.tag=dev" in command and "--set runner.image.tag=dev" in command
