"""KubeStore without a cluster: error translation, configuration retries, the write paths into
the catalog (read-your-writes), the Job delete of a cancel, reports read on demand."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from datapipelines.api.apiserver import MERGE_PATCH, ApiServerError
from datapipelines.api.cache import WatchCache
from datapipelines.api.errors import Conflict, Invalid, KubeUnavailable, NotFound
from datapipelines.api.kube import KubeStore, translate
from datapipelines.api.metrics import Metrics
from datapipelines.api.settings import Settings
from datapipelines.resources.manifests import CANCEL_PATCH, batch_manifest, run_manifest
from datapipelines.resources.run import PipelineRun, Trigger


def api_exc(status: int, message: str = "m") -> ApiServerError:
    return ApiServerError(status, "R", f'{{"message": "{message}"}}')


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
            store.ensure_ready()
        with pytest.raises(KubeUnavailable):
            await store.create_run("n", run_manifest("c", Trigger.API))
    finally:
        await store.stop()


class FakeApiServer:
    """The apiserver client over an in-memory apiserver: custom objects are created, patched
    and read, Jobs read and deleted (paths parsed as the real client builds them)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.fail: BaseException | None = None
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.jobs: dict[tuple[str, str], dict[str, Any]] = {}
        self.deletes: list[tuple[str, str, Any]] = []
        self.delete_status: int | None = None
        self._rv = 100

    def _stamp(self, obj: dict[str, Any]) -> dict[str, Any]:
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        return obj

    async def get(self, path: str, params: Any = None, **kw: Any) -> dict[str, Any]:
        return await self.request("GET", path, params=params, **kw)

    async def request(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        # /apis/<group>/<version>/namespaces/<ns>/<plural>[/<name>]
        parts = path.strip("/").split("/")
        ns, plural = parts[4], parts[5]
        name = parts[6] if len(parts) > 6 else None
        body = kw.get("body")
        if plural == "jobs":
            return self._job(method, ns, name or "", body)
        kind = {"POST": "create", "PATCH": "patch", "GET": "get"}[method]
        self.calls.append((kind, {"ns": ns, "plural": plural, "name": name, **kw}))
        if self.fail and kind != "get":
            raise self.fail
        if kind == "create":
            meta = dict(body["metadata"])
            meta.setdefault("name", meta.pop("generateName", "x-") + "abcde")
            meta.update(namespace=ns, uid=f"uid-{meta['name']}")
            obj = self._stamp({**body, "metadata": meta})
            self.objects[(ns, meta["name"])] = obj
            return obj
        if (ns, name) not in self.objects:
            raise api_exc(404)
        obj = self.objects[(ns, name or "")]
        if kind == "patch":
            obj["spec"] = {**obj["spec"], **body["spec"]}
            return self._stamp(obj)
        return obj

    def _job(self, method: str, ns: str, name: str, body: Any) -> dict[str, Any]:
        if method == "DELETE":
            self.deletes.append((name, ns, body))
            if self.delete_status:
                raise api_exc(self.delete_status)
            return {"kind": "Status", "status": "Success"}
        if (ns, name) not in self.jobs:
            raise api_exc(404)
        return self.jobs[(ns, name)]


def job(name: str, owner_uid: str | None, controller: bool = True) -> dict[str, Any]:
    owners = [{"uid": owner_uid, "controller": controller}] if owner_uid else []
    return {"metadata": {"name": name, "uid": f"job-uid-{name}", "ownerReferences": owners}}


def _store(namespace: str = "n") -> tuple[KubeStore, FakeApiServer, FakeApiServer]:
    api = FakeApiServer()
    store = KubeStore(Settings(namespace=namespace), api_client=api)  # type: ignore[arg-type]
    store.cache = WatchCache(api, store.namespaces, catalog=store.catalog)  # type: ignore[arg-type]
    for w in store.cache.watches.values():
        w.synced = True
    return store, api, api


def _requests(verb: str, resource: str) -> float:
    return sum(  # every status code
        sample.value
        for metric in Metrics().registry.collect()
        for sample in metric.samples
        if sample.name == "datapipelines_api_apiserver_requests_total"
        and sample.labels["verb"] == verb
        and sample.labels["resource"] == resource
    )


async def test_writes_go_to_the_apiserver_and_into_the_catalog() -> None:
    store, custom, _ = _store()
    creates = _requests("create", "pipelineruns")
    run = await store.create_run("n", run_manifest("c", Trigger.API, namespace="n"))
    assert isinstance(run, PipelineRun) and run.name == "c-abcde" and run.namespace == "n"
    assert store.run("c-abcde") == run  # read-your-writes, before the watch says anything
    assert store.catalog.active_runs(("n", "c")) == [run]
    assert _requests("create", "pipelineruns") == creates + 1
    patched = await store.patch_run(run, CANCEL_PATCH)
    kind, call = custom.calls[-1]
    assert (kind, call["ns"], call["plural"], call["name"]) == (
        "patch",
        "n",
        "pipelineruns",
        "c-abcde",
    )
    assert call["content_type"] == MERGE_PATCH
    assert patched.spec.cancel_requested is True
    cached = store.run("c-abcde")
    assert cached is not None and cached.spec.cancel_requested is True
    batch = await store.create_batch("n", batch_manifest(["c"], name="batch-1", namespace="n"))
    assert store.batches("batch-1") == [batch]
    await store.patch_batch(batch, CANCEL_PATCH)
    assert store.batches("batch-1")[0].spec.cancel_requested is True


async def test_cluster_wide_store_writes_into_the_one_watch() -> None:
    store, _, _ = _store(namespace="")
    assert store.namespaces == []
    assert store.cache is not None and {ns for _, ns in store.cache.watches} == {None}
    await store.create_run("team-x", run_manifest("c", Trigger.API, namespace="team-x"))
    assert ("team-x", "c-abcde") in store.catalog.runs


async def test_delete_run_job_deletes_only_the_runs_own_job() -> None:
    store, _, batch = _store()
    run = await store.create_run("n", run_manifest("c", Trigger.API, namespace="n"))
    assert await store.delete_run_job(run) is False  # no Job yet
    assert batch.deletes == []
    batch.jobs[("n", run.name)] = job(run.name, owner_uid="someone-else")
    assert await store.delete_run_job(run) is False  # not the run's: left alone
    assert batch.deletes == []
    batch.jobs[("n", run.name)] = job(run.name, owner_uid=run.metadata.uid, controller=False)
    assert await store.delete_run_job(run) is False  # owned but not controlled by the run
    batch.jobs[("n", run.name)] = job(run.name, owner_uid=run.metadata.uid)
    assert await store.delete_run_job(run) is True
    name, ns, options = batch.deletes[-1]
    assert (name, ns) == (run.name, "n")
    assert options["propagationPolicy"] == "Background"
    assert options["preconditions"]["uid"] == f"job-uid-{run.name}"  # exactly the Job read
    for status in (404, 409):  # gone meanwhile, or replaced by another Job of that name
        batch.delete_status = status
        assert await store.delete_run_job(run) is False


async def test_report_is_read_on_demand_and_kept_for_finished_runs() -> None:
    store, custom, _ = _store()
    run = await store.create_run("n", run_manifest("c", Trigger.API, namespace="n"))
    assert await store.report(run) is None  # the catalog saw no report: no request
    assert not [c for c in custom.calls if c[0] == "get"]
    finished = dict(custom.objects[("n", run.name)])
    finished["status"] = {
        "phase": "Succeeded",
        "result": {"success": True},
        "runnerResult": {"success": True, "report": "loaded 3 rows"},
    }
    finished["metadata"] = {**finished["metadata"], "resourceVersion": "200"}
    custom.objects[("n", run.name)] = finished
    store.cache.watch_for("pipelineruns", "n").handle_event(  # type: ignore[union-attr]
        {"type": "MODIFIED", "object": finished}
    )
    cached = store.run(run.name)
    assert cached is not None and cached.report() is None  # not in memory
    gets = _requests("get", "pipelineruns")
    assert await store.report(cached) == "loaded 3 rows"
    assert await store.report(cached) == "loaded 3 rows"  # a finished run's report: kept
    assert len([c for c in custom.calls if c[0] == "get"]) == 1
    assert _requests("get", "pipelineruns") == gets + 1


async def test_write_failures_become_api_errors() -> None:
    store, custom, _ = _store()
    run = await store.create_run("n", run_manifest("c", Trigger.API, namespace="n"))
    custom.fail = aiohttp.ClientConnectionError("refused")
    with pytest.raises(KubeUnavailable, match="not reachable"):
        await store.create_run("n", run_manifest("c", Trigger.API, namespace="n"))
    custom.fail = api_exc(404)
    with pytest.raises(NotFound):
        await store.patch_run(run, CANCEL_PATCH)
    custom.fail = api_exc(409, "already exists")
    with pytest.raises(Conflict, match="already exists"):
        await store.create_batch("n", batch_manifest(["c"], name="batch-1", namespace="n"))


async def test_unsynced_cache_refuses_writes() -> None:
    store, custom, _ = _store()
    assert store.cache is not None
    runs = store.cache.watch_for("pipelineruns", "n")
    runs.synced = False
    runs.last_error = "ClientConnectorError: refused"
    ready, reason = store.readiness()
    assert not ready and "pipelineruns in n: ClientConnectorError" in reason
    with pytest.raises(KubeUnavailable, match="pipelineruns in n: ClientConnectorError"):
        store.ensure_ready()
    with pytest.raises(KubeUnavailable):
        await store.create_run("n", run_manifest("c", Trigger.API, namespace="n"))
    assert custom.calls == []


async def test_kept_reports_are_bounded_in_bytes_least_recently_asked_first(monkeypatch) -> None:
    from datapipelines.api import kube

    monkeypatch.setattr(kube, "REPORT_CACHE_BYTES", 25)
    store, custom, _ = _store()
    runs = []
    for i in range(3):
        run = await store.create_run("n", run_manifest(f"c{i}", Trigger.API, namespace="n"))
        finished = dict(custom.objects[("n", run.name)])
        finished["status"] = {
            "phase": "Succeeded",
            "result": {"success": True},
            "runnerResult": {"success": True, "report": f"report {i} " + "x" * 2},
        }
        finished["metadata"] = {**finished["metadata"], "resourceVersion": str(300 + i)}
        custom.objects[("n", run.name)] = finished
        store.cache.watch_for("pipelineruns", "n").handle_event(  # type: ignore[union-attr]
            {"type": "MODIFIED", "object": finished}
        )
        cached = store.run(run.name)
        assert cached is not None
        runs.append(cached)

    def gets() -> int:
        return len([c for c in custom.calls if c[0] == "get"])

    assert await store.report(runs[0]) == "report 0 xx"  # 11 bytes each: two fit in 25
    assert await store.report(runs[1]) == "report 1 xx"
    assert await store.report(runs[0]) == "report 0 xx"  # kept; now the most recent
    assert gets() == 2
    await store.report(runs[2])  # evicts runs[1], the least recently asked
    assert gets() == 3
    await store.report(runs[0])
    assert gets() == 3
    await store.report(runs[1])
    assert gets() == 4
