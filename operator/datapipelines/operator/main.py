"""The operator process: settings, leadership, and kopf serving the watched namespaces.

Console script ``datapipelines-operator`` (settings from the environment, see config.py).
Only the Lease holder runs kopf and reconciles; on losing the Lease every reconcile is
cancelled at once and the process exits (code 1) to stand by again after a restart. With
``DATAPIPELINES_SHARD_SELECTOR`` the replica serves only the namespaces whose labels match,
with a Lease of its own, and follows namespaces joining or leaving the shard.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Coroutine
from typing import Any

import kopf
from aiohttp import web

from datapipelines.resources import memory
from datapipelines.resources.logformat import JsonFormatter, TextFormatter

from . import registration
from .config import Settings
from .kube import Kube, TokenBucket, count_kopf_requests, field_manager

log = logging.getLogger("datapipelines.operator")


def _configure_logging(settings: Settings) -> None:
    level = getattr(logging, settings.log_level.upper(), logging.INFO)
    kopf.configure(
        verbose=level <= logging.DEBUG,
        log_format=kopf.LogFormat.JSON if settings.log_format == "json" else kopf.LogFormat.FULL,
        log_refkey="k8s" if settings.log_format == "json" else None,
    )
    root = logging.getLogger()
    root.setLevel(level)
    # kopf's handler, with the project's one log schema (kopf's own JSON has other field names)
    formatter = JsonFormatter() if settings.log_format == "json" else TextFormatter()
    for handler in root.handlers:
        handler.setFormatter(formatter)
    for noisy in ("aiohttp.access", "kubernetes_asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    registration.quiet_kopf_logs(level)


async def _shard_namespaces(kube: Kube, settings: Settings) -> list[str] | None:
    """The namespaces of this shard (None: no shard selector, serve what is configured)."""
    if not settings.shard_selector:
        return None
    matching = await kube.list_namespaces(settings.shard_selector, settings.request_timeout_seconds)
    configured = settings.watched_namespaces()
    return [n for n in matching if not configured or n in configured]


async def _serve(kube: Kube, settings: Settings, namespaces: list[str], stop: asyncio.Event) -> str:
    """Run kopf and the reconcilers for ``namespaces`` ([] = all) until ``stop`` or a change
    of the shard's namespaces; returns why it ended."""
    from .archive import Archive
    from .runtime import Runtime

    archive = (
        Archive(settings.history_dsn, settings.request_timeout_seconds)
        if settings.history_dsn
        else None
    )
    if archive is not None:
        try:
            await archive.ensure_table()
        except Exception as exc:
            log.warning("history archive unavailable for now: %s", exc)
    runtime = Runtime(kube, settings, archive)
    kopf_stop = asyncio.Event()
    liveness = (
        f"http://{settings.listen_host}:{settings.health_port}/healthz"
        if settings.health_port
        else None
    )
    kopf_settings = kopf.OperatorSettings()
    # Named namespaces (one, a list, a shard's): nothing to discover. Scanning would list
    # namespaces and CRDs cluster-wide, which these modes have no right to: kopf retries the
    # refusals for ~45 s before it falls back, and no run starts meanwhile.
    kopf_settings.scanning.disabled = bool(namespaces)
    kopf_task = asyncio.create_task(
        kopf.operator(
            namespaces=namespaces,
            clusterwide=not namespaces,
            settings=kopf_settings,
            standalone=True,
            liveness_endpoint=liveness,
            stop_flag=kopf_stop,
            memo=kopf.Memo(ctx=runtime),
        ),
        name="kopf",
    )
    log.info("operator serving %s", ", ".join(namespaces) if namespaces else "all namespaces")
    waits: dict[str, asyncio.Task[Any]] = {
        "stop": asyncio.create_task(stop.wait()),
        "kopf": kopf_task,
    }
    if settings.shard_selector:
        waits["shard"] = asyncio.create_task(_shard_changed(kube, settings, namespaces))
    try:
        done, _ = await asyncio.wait(waits.values(), return_when=asyncio.FIRST_COMPLETED)
        why = next(name for name, task in waits.items() if task in done)
    finally:
        await runtime.stop()  # no reconcile outlives this point
        kopf_stop.set()
        if stop.is_set() and not kopf_task.done():
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(kopf_task), timeout=10)
        for task in waits.values():
            task.cancel()
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await kopf_task
    return why


async def _shard_changed(kube: Kube, settings: Settings, current: list[str]) -> None:
    """Returns when the namespaces matching the shard selector are no longer ``current``."""
    while True:
        await asyncio.sleep(settings.shard_poll_seconds)
        try:
            now = await _shard_namespaces(kube, settings)
        except Exception as exc:
            log.warning("shard namespaces: %s", exc)
            continue
        if now is not None and now != current:
            log.info("shard namespaces changed: %s → %s", current, now)
            return


async def _standby_health(settings: Settings) -> web.AppRunner | None:
    """While not serving (standing by, or a shard with no namespace), answer the liveness
    probe ourselves; kopf's endpoint takes the port over when serving."""
    if not settings.health_port:
        return None
    app = web.Application()

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"role": "standby"})

    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, settings.listen_host, settings.health_port).start()
    return runner


async def _first_of(*waits: Coroutine[Any, Any, Any]) -> None:
    """Returns when the first of ``waits`` ends; the others are cancelled."""
    tasks = [asyncio.create_task(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


async def run_operator(settings: Settings) -> int:
    """Wait for the Lease, then serve until a signal (0) or the Lease is lost (1)."""
    from prometheus_client import start_http_server

    from .leader import LeaderElector, LeaseLost

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    count_kopf_requests()
    kube = await Kube.connect(settings.kubeconfig_path(), settings.request_timeout_seconds)
    kube.field_manager = field_manager(settings.identity())
    kube.limiter = TokenBucket(settings.apiserver_qps, settings.apiserver_burst)
    elector: LeaderElector | None = None
    standby: web.AppRunner | None = None
    hold: asyncio.Task[None] | None = None
    try:
        standby = await _standby_health(settings)
        if settings.leader_election:
            elector = LeaderElector(
                kube,
                settings.lease_home(),
                settings.lease_for_shard(),
                settings.identity(),
                lease_duration=settings.lease_duration_seconds,
                renew_deadline=settings.renew_deadline_seconds,
                retry_period=settings.retry_period_seconds,
            )
            if not await elector.acquire(stop):
                return 0
            kube.guard = elector.guard
            lost = asyncio.Event()
            elector.on_lost.append(lost.set)
            elector.on_lost.append(stop.set)
            hold = asyncio.create_task(elector.hold(stop), name="lease")
        if settings.metrics_port:
            start_http_server(settings.metrics_port, addr=settings.listen_host)
        while not stop.is_set():
            shard = await _shard_namespaces(kube, settings)
            if shard is not None and not shard:
                # an empty list means "all namespaces" to kopf: serve nothing instead
                log.warning(
                    "no namespace matches the shard selector %r: serving none until one does",
                    settings.shard_selector,
                )
                standby = standby or await _standby_health(settings)
                await _first_of(stop.wait(), _shard_changed(kube, settings, []))
                continue
            if standby is not None:
                await standby.cleanup()  # kopf's liveness endpoint takes the port over
                standby = None
            namespaces = shard if shard is not None else settings.watched_namespaces()
            why = await _serve(kube, settings, namespaces, stop)
            if why == "kopf":  # kopf takes over SIGTERM/SIGINT: it stops on a signal
                stop.set()
        if elector is not None and elector.lost.is_set():
            return 1
        return 0
    except LeaseLost:
        return 1
    finally:
        if hold is not None:
            hold.cancel()
            with contextlib.suppress(BaseException):
                await hold
        if standby is not None:
            await standby.cleanup()
        if elector is not None:
            await elector.release()
        await kube.close()


def main() -> None:
    settings = Settings()
    _configure_logging(settings)
    from prometheus_client import disable_created_metrics

    disable_created_metrics()  # no `_created` series (Prometheus derives start times itself)
    memory.enable()  # this process's indexes: frozen out of the collector's way once in sync
    if settings.kubeconfig:
        os.environ["KUBECONFIG"] = settings.kubeconfig  # kopf's own login reads it
    sys.exit(asyncio.run(run_operator(settings)))


if __name__ == "__main__":  # pragma: no cover
    main()
