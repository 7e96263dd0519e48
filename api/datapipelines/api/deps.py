"""Dependencies of the routes, as `Annotated` aliases tests replace via `dependency_overrides`."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security, status
from fastapi.security import APIKeyHeader

from datapipelines.api.access import Caller
from datapipelines.api.archive import HistoryArchive
from datapipelines.api.keyring import Keyring
from datapipelines.api.kubeauth import KubeAuth
from datapipelines.api.metrics import Metrics
from datapipelines.api.podlogs import PodLogSource
from datapipelines.api.settings import Settings
from datapipelines.api.store import PipelineStore

API_KEY_HEADER = "X-API-Key"
NOT_CONFIGURED = "DATAPIPELINES_API_KEY is not configured on the server; set it to enable the API"
BEARER_OFF = (
    "bearer tokens are not accepted by this server (DATAPIPELINES_KUBERNETES_AUTH is off): "
    f"send an API key in the {API_KEY_HEADER} header"
)

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


def _unauthorized(detail: str, scheme: str = "APIKey") -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": scheme}
    )


class Gate:
    """Who a request comes from: a Kubernetes token (when enabled) or an API key."""

    def __init__(self, keyring: Keyring, kube: KubeAuth | None = None) -> None:
        self.keyring = keyring
        self.kube = kube

    async def caller(self, api_key: str | None, bearer: str | None) -> Caller:
        if bearer is not None:
            if self.kube is None:
                raise _unauthorized(BEARER_OFF)
            user = await self.kube.authenticate(bearer)
            if user is None:
                raise _unauthorized("the Kubernetes API rejected the bearer token", "Bearer")
            return user
        if not self.keyring.configured:
            if self.kube is not None:
                raise _unauthorized(
                    "missing credentials: send a Kubernetes token as Authorization: Bearer",
                    "Bearer",
                )
            raise HTTPException(status.HTTP_500_INTERNAL_SERVER_ERROR, detail=NOT_CONFIGURED)
        if not api_key:
            raise _unauthorized(f"missing API key: send it in the {API_KEY_HEADER} header")
        caller = self.keyring.match(api_key)
        if caller is None:
            raise _unauthorized("invalid API key")
        return caller


def bearer_token(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header (None when absent or another
    scheme)."""
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


async def authenticate_request(
    request: Request,
    api_key: Annotated[str | None, Security(api_key_header)] = None,
) -> Caller:
    """The caller of the request (401/500 otherwise), kept in `request.state` for the audit.
    A bearer token is read from the Authorization header directly: the OpenAPI document keeps
    the contract's one scheme (X-API-Key); the description tells of tokens."""
    gate: Gate = request.app.state.gate
    caller = await gate.caller(api_key, bearer_token(request.headers.get("authorization")))
    request.state.caller = caller
    return caller


CallerDep = Annotated[Caller, Depends(authenticate_request)]


async def ready_store(store: StoreDep) -> PipelineStore:
    """The store, once its cache has synced (503 otherwise)."""
    store.ensure_ready()
    return store


ReadyStoreDep = Annotated[PipelineStore, Depends(ready_store)]
