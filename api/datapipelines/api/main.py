"""Builds the FastAPI app; `main()` is the `datapipelines-api` console script."""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import cast

from fastapi import FastAPI
from pydantic import ValidationError

from datapipelines.api.apidocs import mount_api_docs
from datapipelines.api.archive import HistoryArchive, PostgresArchive
from datapipelines.api.audit import AuditMiddleware
from datapipelines.api.deps import Gate
from datapipelines.api.errors import install_handlers
from datapipelines.api.keyring import Keyring, KeysFileError
from datapipelines.api.kubeauth import KubeAuth, apiserver_poster
from datapipelines.api.mcp import McpEndpoint, ToolDeps
from datapipelines.api.metrics import Metrics, MetricsMiddleware
from datapipelines.api.podlogs import KubePodLogs, PodLogSource
from datapipelines.api.requestid import RequestIdMiddleware
from datapipelines.api.routes import api_router, health_router
from datapipelines.api.settings import Settings
from datapipelines.api.store import PipelineStore
from datapipelines.resources import memory

log = logging.getLogger(__name__)

DESCRIPTION = """\
REST facade of datapipelines. Every task is a Kubernetes object (PipelineRun or PipelineBatch)
whose name is the task id, so tasks survive restarts. Send one of the server's keys in the
`X-API-Key` header on every endpoint except `/healthz`, `/readyz` and `/metrics` (or, when the
server accepts them, a Kubernetes token as `Authorization: Bearer`). A key may be scoped to
namespaces and verbs (read, run, cancel): objects of other namespaces answer 404, a verb it
lacks 403. The same operations are MCP tools at `/mcp` (Model Context Protocol over streamable
HTTP, same credentials).
"""

OPENAPI_TAGS = [
    {"name": "connections", "description": "The PipelineConnections: list, status, run."},
    {"name": "pipelines", "description": "The connections again, optionally the enabled only."},
    {"name": "tasks", "description": "Runs and batches by task id: status, cancel; run all."},
    {"name": "history", "description": "Finished runs, newest first (with the archive)."},
    {"name": "runs", "description": "What a run left behind: its pod's log or its report."},
    {"name": "health", "description": "Probes and metrics (no key)."},
]

_UNSET = object()


def create_app(
    settings: Settings | None = None,
    *,
    kube: PipelineStore | None = None,
    archive: HistoryArchive | object | None = _UNSET,
    pod_logs: PodLogSource | None = None,
    kube_auth: KubeAuth | None = None,
) -> FastAPI:
    """The app. `kube` replaces the Kubernetes-backed store (tests pass a fake, and a
    `pod_logs` source if they want one: without the real store there are no pods; and a
    `kube_auth` with a fake reviewer). KeysFileError when the keys file does not validate."""
    settings = settings or Settings()
    keyring = Keyring(settings.api_keys, settings.api_keys_file)
    if kube is None:
        from datapipelines.api.kube import KubeStore

        kube = KubeStore(settings)
        pod_logs = pod_logs or KubePodLogs(kube)
        if settings.kubernetes_auth and kube_auth is None:
            real = kube
            kube_auth = KubeAuth(
                apiserver_poster(lambda: real.api), settings.kubernetes_auth_cache_seconds
            )
    if archive is _UNSET:
        dsn = settings.history_dsn.get_secret_value() if settings.history_dsn else None
        archive = PostgresArchive(dsn) if dsn else None
    store = kube
    metrics = Metrics()
    metrics.watch_store(store)
    history_archive = cast("HistoryArchive | None", archive)
    mcp = McpEndpoint(
        ToolDeps(store=store, archive=history_archive, settings=settings, pod_logs=pod_logs)
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not keyring.configured and kube_auth is None:
            log.warning("DATAPIPELINES_API_KEY is not set: keyed endpoints answer 500")
        await store.start()
        try:
            async with mcp.running():
                yield
        finally:
            await store.stop()
            if isinstance(archive, PostgresArchive):
                await archive.close()

    app = FastAPI(
        title="datapipelines API",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_tags=OPENAPI_TAGS,
        # operationIds are the handlers' names (`cancel_task`, `run_connection`): what a
        # generated client calls its methods
        generate_unique_id_function=lambda route: route.name,
        docs_url=None,  # served by apidocs.py from local assets, not a CDN
        redoc_url=None,
    )
    mount_api_docs(app)
    app.state.settings = settings
    app.state.store = store
    app.state.archive = archive
    app.state.metrics = metrics
    app.state.pod_logs = pod_logs
    app.state.mcp = mcp
    app.state.gate = Gate(keyring, kube_auth)
    install_handlers(app)
    app.add_middleware(AuditMiddleware)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(RequestIdMiddleware)  # outermost: every log line of a request has its id
    app.include_router(health_router)
    app.include_router(api_router)
    mcp.mount(app)
    if settings.console:
        from datapipelines.api import console

        console.install(app, settings)
    return app


def main() -> None:
    """Serve the API with uvicorn on DATAPIPELINES_API_HOST:DATAPIPELINES_API_PORT."""
    import uvicorn

    from datapipelines.api.logs import configure_logging

    try:
        settings = Settings()
    except ValidationError as exc:
        configure_logging()
        for err in exc.errors():
            log.error(
                "invalid setting",
                extra={"field": ".".join(map(str, err["loc"])), "error": err["msg"]},
            )
        sys.exit(2)
    configure_logging(settings.log_format, settings.log_level)
    from prometheus_client import disable_created_metrics

    disable_created_metrics()  # no `_created` series (Prometheus derives start times itself)
    memory.enable()  # this process's catalog: frozen out of the collector's way once listed
    try:
        app = create_app(settings)
    except KeysFileError as exc:
        log.error("invalid API keys file", extra={"error": str(exc)})
        sys.exit(2)
    uvicorn.run(
        app,
        host=settings.api_host,
        port=settings.api_port,
        log_config=None,
        proxy_headers=True,
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()
