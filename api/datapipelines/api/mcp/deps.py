"""What the MCP tools work on (no import of the MCP SDK: the app builds the endpoint's shell
at start-up and the SDK's server on the first MCP request)."""

from __future__ import annotations

from dataclasses import dataclass

from datapipelines.api.archive import HistoryArchive
from datapipelines.api.podlogs import PodLogSource
from datapipelines.api.settings import Settings
from datapipelines.api.store import PipelineStore


@dataclass(frozen=True)
class ToolDeps:
    """What the tools work on: the same objects the REST routes get from their dependencies."""

    store: PipelineStore
    archive: HistoryArchive | None
    settings: Settings
    pod_logs: PodLogSource | None = None
