"""What the harness creates (pure): namespaces split over shards and the connections in them.

Connection names are unique across namespaces (the API serves them all under one name space).
Every runner pod selects kwok's fake nodes through the operator's settings; how long it "runs"
and what it reports are its connection's `runner.env` knobs (hack/kwok/stages-pod.yaml).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from datapipelines.resources import API_VERSION, CONNECTION_KIND

SHARD_LABEL = "datapipelines.io/scale-shard"
FLEET_LABEL = "datapipelines.io/scale-fleet"
#: kwok's fake nodes (hack/kwok.sh): runner pods select and tolerate them
KWOK_NODE_SELECTOR = {"type": "kwok"}
KWOK_TOLERATIONS = [
    {"key": "kwok.x-k8s.io/node", "operator": "Equal", "value": "fake", "effect": "NoSchedule"}
]


class Fleet(BaseModel):
    """A fleet of `connections` spread evenly over `namespaces`, the namespaces over `shards`."""

    tag: str = Field(pattern=r"^[a-z0-9]{1,8}$", description="Prefix of every name.")
    connections: int = Field(ge=1)
    namespaces: int = Field(ge=1)
    shards: int = Field(ge=1)

    def namespace(self, k: int) -> str:
        return f"scale-{self.tag}-{k:02d}"

    def namespace_names(self) -> list[str]:
        return [self.namespace(k) for k in range(self.namespaces)]

    def shard_of(self, k: int) -> str:
        return str(k % self.shards)

    def shard_selector(self, shard: int) -> str:
        return f"{SHARD_LABEL}={shard}"

    def connection_name(self, i: int) -> str:
        return f"{self.tag}-c{i:05d}"

    def placement(self) -> list[tuple[str, str]]:
        """(namespace, connection name) of every connection, round-robin over namespaces."""
        return [
            (self.namespace(i % self.namespaces), self.connection_name(i))
            for i in range(self.connections)
        ]

    def steady_placement(self, count: int) -> list[tuple[str, str]]:
        """`count` more connections, for the steady phase (short runs of their own)."""
        return [(self.namespace(i % self.namespaces), f"{self.tag}-s{i:05d}") for i in range(count)]

    def namespace_manifest(self, k: int) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": self.namespace(k),
                "labels": {SHARD_LABEL: self.shard_of(k), FLEET_LABEL: self.tag},
            },
        }


def connection_manifest(
    name: str,
    ns: str,
    *,
    run_seconds: float,
    schedule: str | None = None,
    history_limit: int | None = None,
    rows: int = 100,
) -> dict[str, Any]:
    """An enabled rest_api → DuckDB connection whose runs "take" `run_seconds` on a fake node
    and report `rows` rows; Forbid, no retries. The source is never reached (kwok runs nothing)."""
    spec: dict[str, Any] = {
        "type": "rest_api",
        "enabled": True,
        "schemaName": name.replace("-", "_"),
        "concurrencyPolicy": "Forbid",
        "retries": 0,
        "timeoutSeconds": 900,
        "source": {
            "restApi": {
                "baseUrl": "http://127.0.0.1:9/",
                "resources": [{"name": "items", "endpoint": {"path": "items"}}],
            }
        },
        "destination": {
            "type": "duckdb",
            "duckdb": {"path": f"/var/lib/datapipelines/duckdb/{name}.duckdb", "ephemeral": True},
        },
        "runner": {
            "env": [
                {"name": "RUNNER__KWOK_DURATION", "value": f"{int(run_seconds * 1000)}ms"},
                {"name": "RUNNER__KWOK_ROWS", "value": str(rows)},
            ]
        },
    }
    if schedule:
        spec["schedule"] = schedule
    if history_limit is not None:
        spec["historyLimit"] = history_limit
    return {
        "apiVersion": API_VERSION,
        "kind": CONNECTION_KIND,
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    }
