"""The operator's entry point: registers the kopf handlers (each hands off to ``handlers/``)
and runs kopf, behind a Lease so that only one replica acts at a time.

Console script: ``datapipelines-operator`` (settings from the environment, see config.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import sys
from typing import Any

import kopf

from datapipelines.resources import (
    BATCH_PLURAL,
    CONNECTION_PLURAL,
    GROUP,
    LABEL_MANAGED_BY,
    LABEL_RUN,
    MANAGED_BY_OPERATOR,
    RUN_PLURAL,
    VERSION,
)

from .config import FINALIZER, KOPF_PREFIX, Settings
from .handlers import batches, connections, periodic, runs

log = logging.getLogger("datapipelines.operator")

RUN = (GROUP, VERSION, RUN_PLURAL)
CONNECTION = (GROUP, VERSION, CONNECTION_PLURAL)
BATCH = (GROUP, VERSION, BATCH_PLURAL)


def _deleted(event: kopf.RawEvent, **_: Any) -> bool:
    return event.get("type") == "DELETED"


# ------------------------------------------------------------------------------ kopf set-up


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    """kopf's bookkeeping under our own prefix, never in our status; quiet event posting."""
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=KOPF_PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=KOPF_PREFIX, key="last-handled-configuration"
    )
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 60


# ------------------------------------------------------------------------------ PipelineRun


@kopf.on.login(id="login")
def login(settings: kopf.OperatorSettings, **kwargs: Any) -> kopf.ConnectionInfo | None:
    """The kubeconfig named now (`main` sets KUBECONFIG from DATAPIPELINES_KUBECONFIG after the
    client libraries read it at import), else the pod's ServiceAccount."""
    if os.environ.get("KUBECONFIG"):
        return kopf.login_with_kubeconfig(settings=settings, **kwargs)
    info = kopf.login_with_service_account(settings=settings, **kwargs)
    return None if info is None else dataclasses.replace(info, server=in_cluster_server())


def in_cluster_server() -> str:
    """The apiserver as the kubelet (or the chart's kubeApiServer) announces it to the pod, the way
    client-go's in-cluster config reads it (kopf's own login assumes kubernetes.default.svc)."""
    host = os.environ.get("KUBERNETES_SERVICE_HOST", "kubernetes.default.svc")
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    if ":" in host:  # IPv6
        host = f"[{host}]"
    return f"https://{host}:{port}"


@kopf.on.create(*RUN, id="run-start")
@kopf.on.resume(*RUN, id="run-start")
async def run_seen(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    await runs.on_run_seen(memo.ctx, dict(body))


@kopf.on.field(*RUN, field="spec.cancelRequested", id="run-cancel")
async def run_cancel(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    await runs.on_cancel_requested(memo.ctx, dict(body))


@kopf.on.event(*RUN, id="run-deleted", when=_deleted)
async def run_deleted(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    await runs.on_run_deleted(memo.ctx, dict(event["object"]))


@kopf.on.event("batch", "v1", "jobs", labels={LABEL_MANAGED_BY: MANAGED_BY_OPERATOR})
async def job_event(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    await runs.on_child_event(
        memo.ctx, str(body.metadata.namespace), body.metadata.labels.get(LABEL_RUN)
    )


@kopf.on.event("v1", "pods", labels={LABEL_RUN: kopf.PRESENT})
async def pod_event(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    await runs.on_child_event(
        memo.ctx, str(body.metadata.namespace), body.metadata.labels.get(LABEL_RUN)
    )


# ------------------------------------------------------------------------------ PipelineConnection


@kopf.on.create(*CONNECTION, id="connection")
@kopf.on.update(*CONNECTION, id="connection")
async def connection_changed(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    await connections.on_connection(memo.ctx, dict(body))


@kopf.on.resume(*CONNECTION, id="connection-resume")
async def connection_resumed(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    await connections.on_connection(memo.ctx, dict(body), resumed=True)


# ------------------------------------------------------------------------------ PipelineBatch


@kopf.on.create(*BATCH, id="batch")
@kopf.on.resume(*BATCH, id="batch")
@kopf.on.field(*BATCH, field="spec.cancelRequested", id="batch-cancel")
async def batch_changed(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    await batches.reconcile_batch(memo.ctx, str(body.metadata.namespace), str(body.metadata.name))


# ------------------------------------------------------------------------------ process


def _configure_logging(settings: Settings) -> None:
    level = getattr(logging, settings.log_level.upper(), logging.INFO)
    kopf.configure(
        verbose=level <= logging.DEBUG,
        log_format=kopf.LogFormat.JSON if settings.log_format == "json" else kopf.LogFormat.FULL,
        log_refkey="k8s" if settings.log_format == "json" else None,
    )
    logging.getLogger().setLevel(level)
    for noisy in ("aiohttp.access", "kubernetes_asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if level > logging.DEBUG:
        # kopf logs every handler success at INFO; our own log lines say what happened.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)


async def run_operator(settings: Settings) -> int:
    """Wait for the Lease, then run kopf until a signal or the Lease is lost (exit code 1)."""
    from aiohttp import web
    from prometheus_client import start_http_server

    from .archive import Archive
    from .context import Context
    from .kube import Kube
    from .leader import LeaderElector, LeaseLost

    namespace = settings.watched_namespace()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    kube = await Kube.connect(settings.kubeconfig_path())
    elector: LeaderElector | None = None
    runner: web.AppRunner | None = None
    try:
        if settings.health_port:
            # While standing by, answer the liveness probe ourselves; kopf's endpoint takes over.
            app = web.Application()

            async def standby(_: web.Request) -> web.Response:
                return web.json_response({"role": "standby"})

            app.router.add_get("/healthz", standby)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, settings.listen_host, settings.health_port).start()
        if settings.leader_election:
            elector = LeaderElector(
                kube,
                namespace,
                settings.lease_name,
                settings.identity(),
                settings.lease_duration_seconds,
            )
            if not await elector.acquire(stop):
                return 0
        if runner is not None:
            await runner.cleanup()
            runner = None
        if settings.metrics_port:
            start_http_server(settings.metrics_port, addr=settings.listen_host)
        archive = Archive(settings.history_dsn) if settings.history_dsn else None
        if archive is not None:
            try:
                await archive.ensure_table()
            except Exception as exc:
                log.warning("history archive unavailable for now: %s", exc)
        ctx = Context(settings=settings, kube=kube, namespace=namespace, archive=archive)
        log.info("operator acting in namespace %s", namespace)

        kopf_stop = asyncio.Event()
        liveness = (
            f"http://{settings.listen_host}:{settings.health_port}/healthz"
            if settings.health_port
            else None
        )
        kopf_task = asyncio.create_task(
            kopf.operator(
                namespaces=[namespace],
                clusterwide=False,
                standalone=True,
                liveness_endpoint=liveness,
                stop_flag=kopf_stop,
                memo=kopf.Memo(ctx=ctx),
            )
        )
        loop_task = asyncio.create_task(periodic.periodic(ctx, kopf_stop))
        watchers = {kopf_task, loop_task, asyncio.create_task(stop.wait())}
        hold_task = asyncio.create_task(elector.hold(stop)) if elector else None
        if hold_task is not None:
            watchers.add(hold_task)
        done, _ = await asyncio.wait(watchers, return_when=asyncio.FIRST_COMPLETED)
        code = 0
        if hold_task is not None and hold_task in done and hold_task.exception() is not None:
            lost = hold_task.exception()
            log.error("stopping: %s", lost)
            code = 1 if isinstance(lost, LeaseLost) else 2
        kopf_stop.set()
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(kopf_task, timeout=30)
        for task in watchers:
            task.cancel()
        return code
    finally:
        if runner is not None:
            await runner.cleanup()
        if elector is not None:
            await elector.release()
        await kube.close()


def main() -> None:
    settings = Settings()
    _configure_logging(settings)
    if settings.kubeconfig:
        os.environ["KUBECONFIG"] = settings.kubeconfig  # kopf's own login reads it
    sys.exit(asyncio.run(run_operator(settings)))


if __name__ == "__main__":  # pragma: no cover
    main()
