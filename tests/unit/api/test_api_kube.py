"""KubeStore without a cluster: error translation, configuration retries, write paths."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio.client.exceptions import ApiException

from datapipelines.api.errors import Conflict, Invalid, KubeUnavailable, NotFound
from datapipelines.api.kube import MERGE_PATCH, KubeStore, translate
from datapipelines.api.settings import Settings


def api_exc(status: int, message: str = "m") -> ApiException:
    exc = ApiException(status=status, reason="R")
    exc.body = f'{{"message": "{message}"}}'
    return exc


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (api_exc(404), NotFound),
        (api_exc(409), Conflict),
        (api_exc(422), Invalid),
        (api_exc(400), Invalid),
        (api_exc(403), KubeUnavailable),
        (api_exc(500), KubeUnavailable),
        (api_exc(429), KubeUnavailable),
        (aiohttp.ClientConnectionError("refused"), KubeUnavailable),
        (TimeoutError(), KubeUnavailable),
        (OSError("unreachable"), KubeUnavailable),
    ],
)
def test_translate(exc: BaseException, kind: type) -> None:
    err = translate(exc, "doing it")
    assert isinstance(err, kind)
    assert err.detail.startswith("doing it")


def test_translate_keeps_the_apiserver_message() -> None:
    assert (
        "spec.connections is immutable"
        in translate(api_exc(422, "spec.connections is immutable"), "x").detail
    )


async def test_missing_kubeconfig_is_not_ready_and_retried(tmp_path: Path) -> None:
    store = KubeStore(Settings(kubeconfig=str(tmp_path / "nope"), namespace="n"))
    await store.start()
    try:
        for _ in range(100):
            if "configuration" in store.readiness()[1]:
                break
            await asyncio.sleep(0.01)
        ready, reason = store.readiness()
        assert not ready and "no Kubernetes client configuration" in reason
        with pytest.raises(KubeUnavailable):
            store.connections()
    finally:
        await store.stop()


class FakeCustomApi:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.fail: BaseException | None = None

    async def create_namespaced_custom_object(self, group, version, ns, plural, body, **kw):
        self.calls.append(("create", (plural, body, kw)))
        if self.fail:
            raise self.fail
        return {**body, "metadata": {"name": "c-abcde", "resourceVersion": "7"}}

    async def patch_namespaced_custom_object(self, group, version, ns, plural, name, body, **kw):
        self.calls.append(("patch", (plural, name, body, kw)))
        if self.fail:
            raise self.fail
        return {"metadata": {"name": name, "resourceVersion": "8"}, "spec": body["spec"]}


class FakeBatchApi:
    def __init__(self, status: int | None = None) -> None:
        self.status, self.calls = status, []

    async def delete_namespaced_job(self, name, ns, body=None, **kw):
        self.calls.append((name, ns, body))
        if self.status:
            raise api_exc(self.status)


def _store() -> tuple[KubeStore, FakeCustomApi, FakeBatchApi]:
    from datapipelines.api.cache import WatchCache

    store = KubeStore(Settings(namespace="n"), api_client=object())  # type: ignore[arg-type]
    custom, batch = FakeCustomApi(), FakeBatchApi()
    store.custom, store.batch_api = custom, batch  # type: ignore[assignment]
    store.cache = WatchCache(custom, "n")
    for w in store.cache.watches:
        w.synced = True
    return store, custom, batch


async def test_writes_go_to_the_apiserver_and_into_the_cache() -> None:
    store, custom, batch = _store()
    run = await store.create_run({"metadata": {"generateName": "c-"}, "spec": {"x": 1}})
    assert store.run("c-abcde") == run  # read-your-writes
    await store.patch_run("c-abcde", {"spec": {"cancelRequested": True}})
    kind, (plural, name, _body, kw) = custom.calls[-1]
    assert (kind, plural, name) == ("patch", "pipelineruns", "c-abcde")
    assert kw["_content_type"] == MERGE_PATCH
    assert await store.delete_job("c-abcde") is True
    assert batch.calls[0][2].propagation_policy == "Background"
    batch.status = 404
    assert await store.delete_job("gone") is False


async def test_write_failures_become_api_errors() -> None:
    store, custom, _ = _store()
    custom.fail = aiohttp.ClientConnectionError("refused")
    with pytest.raises(KubeUnavailable, match="not reachable"):
        await store.create_run({"metadata": {}, "spec": {}})
    custom.fail = api_exc(404)
    with pytest.raises(NotFound):
        await store.patch_batch("b", {"spec": {"cancelRequested": True}})


async def test_unsynced_cache_refuses_reads_and_writes() -> None:
    store, _, _ = _store()
    assert store.cache is not None
    store.cache.runs.synced = False
    store.cache.runs.last_error = "ClientConnectorError: refused"
    with pytest.raises(KubeUnavailable, match="pipelineruns: ClientConnectorError"):
        store.runs()
    with pytest.raises(KubeUnavailable):
        await store.create_run({"metadata": {}, "spec": {}})
