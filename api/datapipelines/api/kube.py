"""`KubeStore`: the PipelineStore over the real apiserver (the watch-fed catalog for reads).

Every call has a deadline and is counted by verb and resource
(``datapipelines_api_apiserver_requests_total``). Cancelling deletes only the run's own Job:
the Job is read, its controller ownerReference must be the run, and the delete carries the
Job's uid as a precondition (the chart's admission policy refuses the API's deletes of any
other Job, so RBAC's "delete jobs" cannot be used beyond that).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Awaitable
from pathlib import Path
from typing import TypeVar

import aiohttp
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio import config as k8s_config
from kubernetes_asyncio.client.exceptions import ApiException

from datapipelines.api.cache import Backoff, WatchCache
from datapipelines.api.catalog import Catalog, parse_batch, parse_run
from datapipelines.api.errors import ApiError, Conflict, Invalid, KubeUnavailable, NotFound
from datapipelines.api.metrics import count_request
from datapipelines.api.settings import Settings
from datapipelines.api.store import Obj, PipelineStore
from datapipelines.resources import BATCH_PLURAL, GROUP, RUN_PLURAL, VERSION
from datapipelines.resources.batch import PipelineBatch
from datapipelines.resources.run import PipelineRun

log = logging.getLogger(__name__)

T = TypeVar("T")
WRITE_TIMEOUT = (5, 20)  # connect, read seconds
MERGE_PATCH = "application/merge-patch+json"
REPORT_CACHE_SIZE = 256


async def load_client(settings: Settings) -> k8s.ApiClient:
    """An ApiClient from the kubeconfig setting, else in-cluster config, else ~/.kube/config."""
    cfg = k8s.Configuration()
    path = _first_existing(settings.kubeconfig)
    if path:
        await k8s_config.load_kube_config(
            config_file=path, client_configuration=cfg, persist_config=False
        )
    elif os.environ.get("KUBERNETES_SERVICE_HOST"):
        k8s_config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
    else:
        await k8s_config.load_kube_config(client_configuration=cfg, persist_config=False)
    return k8s.ApiClient(configuration=cfg)


def _first_existing(paths: str | None) -> str | None:
    if not paths:
        return None
    candidates = [p for p in paths.split(os.pathsep) if p]
    for p in candidates:
        if Path(p).expanduser().exists():
            return str(Path(p).expanduser())
    return candidates[0] if candidates else None


def translate(exc: BaseException, what: str) -> ApiError:
    """An apiserver failure as the API error to answer with."""
    if isinstance(exc, ApiException):
        reason = _status_message(exc)
        if exc.status == 404:
            return NotFound(f"{what}: not found ({reason})")
        if exc.status == 409:
            return Conflict(f"{what}: conflict ({reason})")
        if exc.status in (400, 422):
            return Invalid(f"{what}: rejected by the Kubernetes API ({reason})")
        if exc.status in (401, 403):
            return KubeUnavailable(
                f"{what}: the API server's service account is not allowed to do this "
                f"({exc.status}: {reason})"
            )
        return KubeUnavailable(f"{what}: Kubernetes API error {exc.status} ({reason})")
    return KubeUnavailable(
        f"{what}: Kubernetes API not reachable ({type(exc).__name__}: {exc})".replace(": )", ")")
    )


def _status_message(exc: ApiException) -> str:
    try:
        body = json.loads(exc.body or "{}")
        return str(body.get("message") or exc.reason)
    except (TypeError, ValueError):
        return str(exc.reason)


async def _call(coro: Awaitable[T], what: str, verb: str, resource: str) -> T:
    count_request(verb, resource)
    try:
        return await coro
    except (TimeoutError, ApiException, aiohttp.ClientError, OSError) as exc:
        raise translate(exc, what) from exc


class KubeStore(PipelineStore):
    """Reads from the watch-fed catalog; writes (create, merge patch, delete Job) to the
    apiserver."""

    def __init__(self, settings: Settings, api_client: k8s.ApiClient | None = None) -> None:
        super().__init__()
        self.settings = settings
        self.namespaces = settings.watched_namespaces()
        self._catalog = Catalog()
        self._api_client = api_client
        self._owns_client = api_client is None
        self._config_error: str | None = None
        self._config_task: asyncio.Task[None] | None = None
        self.cache: WatchCache | None = None
        self.custom: k8s.CustomObjectsApi | None = None
        self.batch_api: k8s.BatchV1Api | None = None
        self._reports: dict[tuple[str, str], tuple[str, str | None]] = {}

    @property
    def catalog(self) -> Catalog:
        return self._catalog

    async def start(self) -> None:
        if self._api_client is not None:
            self._start_cache(self._api_client)
            return
        # Configuration may be missing at first (a kubeconfig written later): keep trying.
        self._config_task = asyncio.create_task(self._configure(), name="kube-configure")

    async def _configure(self) -> None:
        backoff = Backoff(1.0, 30.0)
        while True:
            try:
                client = await load_client(self.settings)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._config_error = f"no Kubernetes client configuration ({exc})"
                log.error("cannot configure the Kubernetes client", extra={"error": str(exc)})
                await asyncio.sleep(backoff.next())
                continue
            self._api_client = client
            self._config_error = None
            self._start_cache(client)
            return

    def _start_cache(self, client: k8s.ApiClient) -> None:
        self.custom = k8s.CustomObjectsApi(client)
        self.batch_api = k8s.BatchV1Api(client)
        self.cache = WatchCache(
            self.custom,
            self.namespaces,
            catalog=self._catalog,
            watch_timeout=self.settings.watch_timeout_seconds,
        )
        self.cache.start()
        where = ", ".join(self.namespaces) if self.namespaces else "all namespaces"
        log.info("watching", extra={"namespaces": where})

    async def stop(self) -> None:
        if self._config_task is not None:
            self._config_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._config_task
        if self.cache is not None:
            await self.cache.stop()
        if self._api_client is not None and self._owns_client:
            await self._api_client.close()

    def readiness(self) -> tuple[bool, str]:
        if self._config_error:
            return False, self._config_error
        if self.cache is None:
            return False, "not connected to the Kubernetes API yet"
        return self.cache.readiness()

    # writes ----------------------------------------------------------------------------------
    def _apis(self) -> tuple[k8s.CustomObjectsApi, k8s.BatchV1Api, WatchCache]:
        self.ensure_ready()
        assert self.custom is not None and self.batch_api is not None and self.cache is not None
        return self.custom, self.batch_api, self.cache

    async def _create(self, namespace: str, plural: str, manifest: Obj, what: str) -> Obj:
        custom, _, cache = self._apis()
        obj: Obj = await _call(
            custom.create_namespaced_custom_object(
                GROUP, VERSION, namespace, plural, manifest, _request_timeout=WRITE_TIMEOUT
            ),
            what,
            "create",
            plural,
        )
        cache.watch_for(plural, namespace).apply_local(obj)
        return obj

    async def create_run(self, namespace: str, manifest: Obj) -> PipelineRun:
        obj = await self._create(namespace, RUN_PLURAL, manifest, "creating the PipelineRun")
        run, _ = parse_run(obj)
        assert run is not None
        return run

    async def create_batch(self, namespace: str, manifest: Obj) -> PipelineBatch:
        obj = await self._create(namespace, BATCH_PLURAL, manifest, "creating the PipelineBatch")
        batch = parse_batch(obj)
        assert batch is not None
        return batch

    async def _patch(self, namespace: str, plural: str, name: str, patch: Obj) -> Obj:
        custom, _, cache = self._apis()
        obj: Obj = await _call(
            custom.patch_namespaced_custom_object(
                GROUP,
                VERSION,
                namespace,
                plural,
                name,
                patch,
                _content_type=MERGE_PATCH,  # type: ignore[call-arg]
                _request_timeout=WRITE_TIMEOUT,
            ),
            f"patching {plural}/{name}",
            "patch",
            plural,
        )
        cache.watch_for(plural, namespace).apply_local(obj)
        return obj

    async def patch_run(self, run: PipelineRun, patch: Obj) -> PipelineRun:
        obj = await self._patch(run.namespace, RUN_PLURAL, run.name, patch)
        updated, _ = parse_run(obj)
        assert updated is not None
        return updated

    async def patch_batch(self, batch: PipelineBatch, patch: Obj) -> PipelineBatch:
        meta = batch.metadata
        obj = await self._patch(meta.namespace, BATCH_PLURAL, meta.name, patch)
        updated = parse_batch(obj)
        assert updated is not None
        return updated

    async def delete_run_job(self, run: PipelineRun) -> bool:
        _, batch_api, _ = self._apis()
        name = run.status.job_name or run.name
        try:
            job = await _call(
                batch_api.read_namespaced_job(name, run.namespace, _request_timeout=WRITE_TIMEOUT),
                f"reading Job {name}",
                "get",
                "jobs",
            )
        except NotFound:
            return False
        owners = job.metadata.owner_references or []
        if not any(o.uid == run.metadata.uid and o.controller for o in owners):
            log.warning(
                "not deleting a Job that does not belong to the run",
                extra={"run": run.name, "job": name},
            )
            return False
        options = k8s.V1DeleteOptions(
            propagation_policy="Background",
            preconditions=k8s.V1Preconditions(uid=job.metadata.uid),
        )
        try:
            await _call(
                batch_api.delete_namespaced_job(
                    name, run.namespace, body=options, _request_timeout=WRITE_TIMEOUT
                ),
                f"deleting Job {name}",
                "delete",
                "jobs",
            )
        except (NotFound, Conflict):  # gone, or a new Job of that name: not ours any more
            return False
        return True

    async def report(self, run: PipelineRun) -> str | None:
        """The report, read from the apiserver (the catalog keeps runs without it); a finished
        run's report never changes, so the last few read are kept."""
        key = (run.namespace, run.name)
        if key not in self._catalog.reports:
            return None
        cached = self._reports.get(key)
        if cached is not None and cached[0] == run.metadata.resource_version:
            return cached[1]
        text = await self._read_report(run)
        if run.terminal:
            self._reports[key] = (run.metadata.resource_version, text)
            while len(self._reports) > REPORT_CACHE_SIZE:
                self._reports.pop(next(iter(self._reports)))
        return text

    async def _read_report(self, run: PipelineRun) -> str | None:

        custom, _, _ = self._apis()
        try:
            obj: Obj = await _call(
                custom.get_namespaced_custom_object(
                    GROUP,
                    VERSION,
                    run.namespace,
                    RUN_PLURAL,
                    run.name,
                    _request_timeout=WRITE_TIMEOUT,
                ),
                f"reading the run {run.name}",
                "get",
                RUN_PLURAL,
            )
        except NotFound:
            return None
        full = PipelineRun.model_validate(obj)
        return full.report()


__all__ = ["KubeStore", "load_client", "translate"]
