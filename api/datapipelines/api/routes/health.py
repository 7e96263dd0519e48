"""Probes and metrics: no API key, nothing secret."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from datapipelines.api.deps import MetricsDep, StoreDep
from datapipelines.api.models import HealthOut

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthOut, summary="Liveness")
async def healthz() -> HealthOut:
    return HealthOut(status="ok")


@router.get(
    "/readyz",
    response_model=HealthOut,
    responses={503: {"model": HealthOut, "description": "The watch cache has not synced."}},
    summary="Readiness: the watch cache has synced",
)
async def readyz(store: StoreDep) -> HealthOut | JSONResponse:
    ready, _reason = store.readiness()
    if ready:
        return HealthOut(status="ready")
    # The reason (addresses, client errors) goes to keyed 503 answers and logs, not here.
    body = HealthOut(status="not ready", detail="the Kubernetes watch cache has not synced")
    return JSONResponse(body.model_dump(), status_code=503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(metrics: MetricsDep) -> Response:
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
