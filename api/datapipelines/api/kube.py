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
import logging
import os
from collections.abc import Awaitable
from pathlib import Path
from typing import TypeVar

from datapipelines.api.apiserver import (
    LAST_STATUS,
    MERGE_PATCH,
    REQUEST_ERRORS,
    ApiServer,
    ApiServerError,
    ConfigurationError,
    core_path,
    custom_path,
    in_cluster_config,
    kubeconfig_config,
    timeout_of,
)
from datapipelines.api.cache import Backoff, WatchCache
from datapipelines.api.catalog import Catalog, parse_batch, parse_run
from datapipelines.api.errors import ApiError, Conflict, Invalid, KubeUnavailable, NotFound
from datapipelines.api.metrics import code_of, count_request
from datapipelines.api.settings import Settings
from datapipelines.api.store import Obj, PipelineStore
from datapipelines.resources import BATCH_PLURAL, CONNECTION_PLURAL, GROUP, RUN_PLURAL, VERSION
from datapipelines.resources.batch import PipelineBatch
from datapipelines.resources.run import KeptLog, LoadedSchema, PipelineRun

log = logging.getLogger(__name__)

T = TypeVar("T")
WRITE_TIMEOUT = timeout_of(5, 20)  # connect, read seconds
SCHEMA_CACHE_RUNS = 256  # finished runs' loaded schemas kept (LRU-ish: oldest read first out)
REPORT_CACHE_BYTES = 8 * 1024 * 1024  # finished runs' reports kept (LRU), ~8,000 of 1 KiB


def load_client(settings: Settings) -> ApiServer:
    """A client from the kubeconfig setting, else in-cluster config, else ~/.kube/config."""
    path = _first_existing(settings.kubeconfig)
    if path:
        return ApiServer(kubeconfig_config(path))
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return ApiServer(in_cluster_config())
    default = Path("~/.kube/config").expanduser()
    if not default.exists():
        raise ConfigurationError(
            "no kubeconfig (DATAPIPELINES_KUBECONFIG), not in a cluster and no ~/.kube/config"
        )
    return ApiServer(kubeconfig_config(default))


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
    if isinstance(exc, ApiServerError):
        reason = exc.message
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


async def _call(coro: Awaitable[T], what: str, verb: str, resource: str) -> T:
    LAST_STATUS.set(0)
    try:
        result = await coro
    except REQUEST_ERRORS as exc:
        count_request(verb, resource, code_of(exc))
        raise translate(exc, what) from exc
    count_request(verb, resource, LAST_STATUS.get() or 200)
    return result


class ReportCache:
    """Finished runs' reports by (namespace, name), each with the resourceVersion it was read at;
    least recently asked first out once the text passes a byte budget."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], tuple[str, str | None]] = {}  # oldest first
        self._bytes = 0

    def get(self, key: tuple[str, str], version: str) -> tuple[bool, str | None]:
        """(hit, report); a hit becomes the most recently asked."""
        cached = self._entries.pop(key, None)
        if cached is None:
            return False, None
        if cached[0] != version:
            self._bytes -= len(cached[1] or "")
            return False, None
        self._entries[key] = cached
        return True, cached[1]

    @property
    def bytes(self) -> int:
        """Characters of the reports held (what the budget bounds)."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def put(self, key: tuple[str, str], version: str, text: str | None, budget: int) -> None:
        replaced = self._entries.pop(key, None)
        if replaced is not None:  # a key put twice counts once
            self._bytes -= len(replaced[1] or "")
        self._entries[key] = (version, text)
        self._bytes += len(text or "")
        while self._bytes > budget and len(self._entries) > 1:
            _, dropped = self._entries.pop(next(iter(self._entries)))
            self._bytes -= len(dropped or "")


class KubeStore(PipelineStore):
    """Reads from the watch-fed catalog; writes (create, merge patch, delete Job) to the
    apiserver."""

    def __init__(self, settings: Settings, api_client: ApiServer | None = None) -> None:
        super().__init__()
        self.settings = settings
        self.namespaces = settings.watched_namespaces()
        self._catalog = Catalog()
        self._api_client = api_client
        self._owns_client = api_client is None
        self._config_error: str | None = None
        self._config_task: asyncio.Task[None] | None = None
        self.cache: WatchCache | None = None
        self._reports = ReportCache()
        self._schemas: dict[tuple[str, str], tuple[str, LoadedSchema | None]] = {}

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
                client = load_client(self.settings)
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

    @property
    def api(self) -> ApiServer | None:
        """The apiserver client, once configured."""
        return self._api_client

    def _start_cache(self, client: ApiServer) -> None:
        self.cache = WatchCache(
            client,
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
    def _apis(self) -> tuple[ApiServer, WatchCache]:
        self.ensure_ready()
        assert self._api_client is not None and self.cache is not None
        return self._api_client, self.cache

    async def _create(self, namespace: str, plural: str, manifest: Obj, what: str) -> Obj:
        api, cache = self._apis()
        obj: Obj = await _call(
            api.request(
                "POST",
                custom_path(GROUP, VERSION, plural, namespace),
                body=manifest,
                deadline=WRITE_TIMEOUT,
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
        api, cache = self._apis()
        obj: Obj = await _call(
            api.request(
                "PATCH",
                custom_path(GROUP, VERSION, plural, namespace, name),
                body=patch,
                content_type=MERGE_PATCH,
                deadline=WRITE_TIMEOUT,
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
        api, _ = self._apis()
        name = run.status.job_name or run.name
        path = core_path("batch/v1", "jobs", run.namespace, name)
        try:
            job = await _call(
                api.get(path, deadline=WRITE_TIMEOUT),
                f"reading Job {name}",
                "get",
                "jobs",
            )
        except NotFound:
            return False
        meta = job.get("metadata") or {}
        owners = meta.get("ownerReferences") or []
        if not any(o.get("uid") == run.metadata.uid and o.get("controller") for o in owners):
            log.warning(
                "not deleting a Job that does not belong to the run",
                extra={"run": run.name, "job": name},
            )
            return False
        options = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "propagationPolicy": "Background",
            "preconditions": {"uid": meta.get("uid")},
        }
        try:
            await _call(
                api.request("DELETE", path, body=options, deadline=WRITE_TIMEOUT),
                f"deleting Job {name}",
                "delete",
                "jobs",
            )
        except (NotFound, Conflict):  # gone, or a new Job of that name: not ours any more
            return False
        return True

    async def connection_manifest(self, namespace: str, name: str) -> Obj | None:
        api, _ = self._apis()
        path = custom_path(GROUP, VERSION, CONNECTION_PLURAL, namespace, name)
        try:
            obj: Obj = await _call(
                api.get(path, deadline=WRITE_TIMEOUT),
                f"reading connection {name}",
                "get",
                CONNECTION_PLURAL,
            )
        except NotFound:
            return None
        return obj

    async def report(self, run: PipelineRun) -> str | None:
        """The report, read from the apiserver (the catalog keeps runs without it); a finished
        run's report never changes, so the most recently asked are kept, up to
        REPORT_CACHE_BYTES of text."""
        key = (run.namespace, run.name)
        if key not in self._catalog.reports:
            return None
        hit, kept = self._reports.get(key, run.metadata.resource_version)
        if hit:
            return kept
        text = await self._read_report(run)
        if run.terminal:
            self._reports.put(key, run.metadata.resource_version, text, REPORT_CACHE_BYTES)
        return text

    async def _read_report(self, run: PipelineRun) -> str | None:
        full = await self._read_run(run)
        return full.report() if full is not None else None

    async def kept_log(self, run: PipelineRun) -> KeptLog | None:
        """The runner's kept log of a run, read from the apiserver (asked for rarely: a person
        debugging a run whose pod is gone; not cached)."""
        full = await self._read_run(run)
        result = full.status.runner_result if full is not None else None
        return result.log if result is not None else None

    async def loaded_schema(self, run: PipelineRun) -> LoadedSchema | None:
        """The runner's loaded schema of a finished run, read from the apiserver once (a
        finished run never changes; the most recent SCHEMA_CACHE_RUNS are kept)."""
        key = (run.namespace, run.name)
        cached = self._schemas.get(key)
        if cached is not None and cached[0] == run.metadata.resource_version:
            return cached[1]
        full = await self._read_run(run)
        result = full.status.runner_result if full is not None else None
        schema = result.loaded_schema if result is not None else None
        if run.terminal:
            self._schemas.pop(key, None)
            self._schemas[key] = (run.metadata.resource_version, schema)
            while len(self._schemas) > SCHEMA_CACHE_RUNS:
                del self._schemas[next(iter(self._schemas))]
        return schema

    async def _read_run(self, run: PipelineRun) -> PipelineRun | None:
        """The whole run object, as stored (the catalog keeps runs without their heavy parts)."""
        api, _ = self._apis()
        try:
            obj: Obj = await _call(
                api.get(
                    custom_path(GROUP, VERSION, RUN_PLURAL, run.namespace, run.name),
                    deadline=WRITE_TIMEOUT,
                ),
                f"reading the run {run.name}",
                "get",
                RUN_PLURAL,
            )
        except NotFound:
            return None
        return PipelineRun.model_validate(obj)


__all__ = ["KubeStore", "load_client", "translate"]
