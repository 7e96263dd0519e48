"""Builders of apiserver-shaped objects for the operator's pure unit tests (imported as opkit)."""

from __future__ import annotations

from typing import Any

from datapipelines.operator.config import Settings


def connection(name: str = "demo", **spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "type": "rest_api",
        "enabled": True,
        "schemaName": "demo_data",
        "writeDisposition": "append",
        "source": {
            "restApi": {
                "baseUrl": "http://127.0.0.1:8765/",
                "resources": [{"name": "items", "endpoint": {"path": "items"}}],
            }
        },
        "destination": {"type": "duckdb"},
        "retries": 2,
        "timeoutSeconds": 600,
        "concurrencyPolicy": "Forbid",
        "historyLimit": 10,
    }
    base.update(spec)
    return {
        "apiVersion": "datapipelines.io/v1alpha1",
        "kind": "PipelineConnection",
        "metadata": {"name": name, "namespace": "ns1", "uid": "conn-uid", "generation": 1},
        "spec": base,
    }


def run(
    name: str = "demo-abcde",
    conn: str = "demo",
    labels: dict[str, str] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    return {
        "apiVersion": "datapipelines.io/v1alpha1",
        "kind": "PipelineRun",
        "metadata": {
            "name": name,
            "namespace": "ns1",
            "uid": "run-uid",
            "labels": labels or {},
            "creationTimestamp": "2026-11-30T08:00:00Z",
        },
        "spec": {"connectionName": conn, "trigger": "api", "cancelRequested": False, **spec},
    }


def make_settings() -> Settings:
    return Settings(runner_host_network=True, kube_api="https://127.0.0.1:6443")
