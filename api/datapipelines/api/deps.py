"""Dependencies of the routes, as `Annotated` aliases tests replace via `dependency_overrides`."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security, status
from fastapi.security import APIKeyHeader

from datapipelines.api.archive import HistoryArchive
from datapipelines.api.metrics import Metrics
from datapipelines.api.podlogs import PodLogSource
from datapipelines.api.settings import Settings
from datapipelines.api.store import PipelineStore

API_KEY_HEADER = "X-API-Key"
NOT_CONFIGURED = "DATAPIPELINES_API_KEY is not configured on the server; set it to enable the API"

api_key_header = APIKeyHeader(
    name=API_KEY_HEADER,
    scheme_name="APIKeyHeader",
    description="One of the keys in the server's DATAPIPELINES_API_KEY (comma-separated).",
    auto_error=False,
)


# The dependencies are coroutines: FastAPI runs a plain `def` dependency in its thread pool, a
# thread hop per dependency per request (measured: the tail of every read under load).


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_store(request: Request) -> PipelineStore:
    store: PipelineStore = request.app.state.store
    return store


async def get_archive(request: Request) -> HistoryArchive | None:
    archive: HistoryArchive | None = request.app.state.archive
    return archive


async def get_metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


async def get_pod_logs(request: Request) -> PodLogSource | None:
    pod_logs: PodLogSource | None = request.app.state.pod_logs
    return pod_logs


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[PipelineStore, Depends(get_store)]
ArchiveDep = Annotated[HistoryArchive | None, Depends(get_archive)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
PodLogsDep = Annotated[PodLogSource | None, Depends(get_pod_logs)]


def key_matches(presented: str, accepted: list[str]) -> bool:
    """Constant-time check against every accepted key (no early exit, no length shortcut)."""
    given = presented.encode()
    matched = False
    for key in accepted:
        matched |= hmac.compare_digest(given, key.encode())
    return matched


async def require_api_key(
    settings: SettingsDep,
    api_key: Annotated[str | None, Security(api_key_header)] = None,
) -> None:
    accepted = settings.api_keys
    if not accepted:
        raise HTTPException(status.HTTP_500_INTERNAL_SERVER_ERROR, detail=NOT_CONFIGURED)
    if not api_key:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail=f"missing API key: send it in the {API_KEY_HEADER} header",
            headers={"WWW-Authenticate": "APIKey"},
        )
    if not key_matches(api_key, accepted):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="invalid API key",
            headers={"WWW-Authenticate": "APIKey"},
        )


async def ready_store(store: StoreDep) -> PipelineStore:
    """The store, once its cache has synced (503 otherwise)."""
    store.ensure_ready()
    return store


ReadyStoreDep = Annotated[PipelineStore, Depends(ready_store)]
