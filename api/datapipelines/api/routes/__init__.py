"""The API's routers, one module per resource; `api_router` holds every keyed route."""

from fastapi import APIRouter, Depends

from datapipelines.api.deps import authenticate_request
from datapipelines.api.models import ErrorBody
from datapipelines.api.routes import connections, health, history, pipelines, runs, tasks

_COMMON_ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorBody, "description": "Missing or invalid X-API-Key (or bearer token)."},
    403: {
        "model": ErrorBody,
        "description": "The caller sees the object but may not do this (`missing` names the "
        "verb: read, run or cancel; `namespace` where).",
    },
    500: {"model": ErrorBody, "description": "DATAPIPELINES_API_KEY not configured, or a bug."},
    503: {"model": ErrorBody, "description": "The Kubernetes API cannot be reached."},
}

api_router = APIRouter(dependencies=[Depends(authenticate_request)], responses=_COMMON_ERRORS)
api_router.include_router(connections.router)
api_router.include_router(pipelines.router)
api_router.include_router(tasks.router)
api_router.include_router(history.router)
api_router.include_router(runs.router)

health_router = health.router

__all__ = ["api_router", "health_router"]
