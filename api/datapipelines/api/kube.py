"""`KubeStore`: the PipelineStore over the real apiserver (watch cache for reads)."""

from __future__ import annotations

import asyncio
import contextlib
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
from datapipelines.api.errors import ApiError, Conflict, Invalid, KubeUnavailable, NotFound
from datapipelines.api.settings import Settings
from datapipelines.api.store import Obj, PipelineStore
from datapipelines.resources import BATCH_PLURAL, GROUP, RUN_PLURAL, VERSION

log = logging.getLogger(__name__)

T = TypeVar("T")
WRITE_TIMEOUT = (5, 20)  # connect, read seconds
MERGE_PATCH = "application/merge-patch+json"


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
    import json

    try:
        body = json.loads(exc.body or "{}")
        return str(body.get("message") or exc.reason)
    except (TypeError, ValueError):
        return str(exc.reason)


async def _call(coro: Awaitable[T], what: str) -> T:
    try:
        return await coro
    except (TimeoutError, ApiException, aiohttp.ClientError, OSError) as exc:
        raise translate(exc, what) from exc


class KubeStore(PipelineStore):
    """Reads from the watch cache; writes (create, merge patch, delete Job) to the apiserver."""

    def __init__(self, settings: Settings, api_client: k8s.ApiClient | None = None) -> None:
        super().__init__()
        self.settings = settings
        self.namespace = settings.resolved_namespace()
        self._api_client = api_client
        self._owns_client = api_client is None
        self._config_error: str | None = None
        self._config_task: asyncio.Task[None] | None = None
        self.cache: WatchCache | None = None
        self.custom: k8s.CustomObjectsApi | None = None
        self.batch_api: k8s.BatchV1Api | None = None

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
            self.custom, self.namespace, watch_timeout=self.settings.watch_timeout_seconds
        )
        self.cache.start()
        log.info("watching", extra={"namespace": self.namespace})

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

    # reads -----------------------------------------------------------------------------------
    def _watch_objects(self, which: str) -> dict[str, Obj]:
        self.ensure_ready()
        assert self.cache is not None
        return getattr(self.cache, which).objects  # type: ignore[no-any-return]

    def connections(self) -> list[Obj]:
        return list(self._watch_objects("connections").values())

    def connection(self, name: str) -> Obj | None:
        return self._watch_objects("connections").get(name)

    def runs(self) -> list[Obj]:
        return list(self._watch_objects("runs").values())

    def run(self, name: str) -> Obj | None:
        return self._watch_objects("runs").get(name)

    def batch(self, name: str) -> Obj | None:
        return self._watch_objects("batches").get(name)

    # writes ----------------------------------------------------------------------------------
    def _apis(self) -> tuple[k8s.CustomObjectsApi, k8s.BatchV1Api, WatchCache]:
        self.ensure_ready()
        assert self.custom is not None and self.batch_api is not None and self.cache is not None
        return self.custom, self.batch_api, self.cache

    async def create_run(self, manifest: Obj) -> Obj:
        custom, _, cache = self._apis()
        obj: Obj = await _call(
            custom.create_namespaced_custom_object(
                GROUP, VERSION, self.namespace, RUN_PLURAL, manifest, _request_timeout=WRITE_TIMEOUT
            ),
            "creating the PipelineRun",
        )
        cache.runs.apply_local(obj)
        return obj

    async def create_batch(self, manifest: Obj) -> Obj:
        custom, _, cache = self._apis()
        obj: Obj = await _call(
            custom.create_namespaced_custom_object(
                GROUP,
                VERSION,
                self.namespace,
                BATCH_PLURAL,
                manifest,
                _request_timeout=WRITE_TIMEOUT,
            ),
            "creating the PipelineBatch",
        )
        cache.batches.apply_local(obj)
        return obj

    async def _patch(self, plural: str, name: str, patch: Obj) -> Obj:
        custom, _, _ = self._apis()
        obj: Obj = await _call(
            custom.patch_namespaced_custom_object(
                GROUP,
                VERSION,
                self.namespace,
                plural,
                name,
                patch,
                _content_type=MERGE_PATCH,  # type: ignore[call-arg]
                _request_timeout=WRITE_TIMEOUT,
            ),
            f"patching {plural}/{name}",
        )
        return obj

    async def patch_run(self, name: str, patch: Obj) -> Obj:
        obj = await self._patch(RUN_PLURAL, name, patch)
        self._apis()[2].runs.apply_local(obj)
        return obj

    async def patch_batch(self, name: str, patch: Obj) -> Obj:
        obj = await self._patch(BATCH_PLURAL, name, patch)
        self._apis()[2].batches.apply_local(obj)
        return obj

    async def delete_job(self, name: str) -> bool:
        _, batch_api, _ = self._apis()
        try:
            await _call(
                batch_api.delete_namespaced_job(
                    name,
                    self.namespace,
                    body=k8s.V1DeleteOptions(propagation_policy="Background"),
                    _request_timeout=WRITE_TIMEOUT,
                ),
                f"deleting Job {name}",
            )
        except NotFound:
            return False
        return True

    async def wait_for_run_end(self, name: str) -> Obj | None:
        _, _, cache = self._apis()
        return await cache.wait_for_run_end(name)


__all__ = ["KubeStore", "load_client", "translate"]
