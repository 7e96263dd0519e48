"""An in-memory PipelineStore: what the watch cache would hold, plus recorded writes.

It feeds the real `Catalog` (the same indexes, projections and waiters as against the cluster),
so a synchronous run in a unit test waits exactly as it does against the cluster: on a Future
that an object change resolves (and `run_updates` follows a run the same way).

Like the apiserver with the CRDs installed, it refuses runs and batches their schema refuses
(a test that builds one fails loudly instead of the catalog silently dropping it), and keeps
reports on the stored objects only: `report()` reads them on demand (`report_reads` counts).
Helpers take `namespace=` for the stores that serve several namespaces.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from datapipelines.api.catalog import Catalog, parse_batch, parse_run
from datapipelines.api.errors import Conflict, KubeUnavailable, NotFound
from datapipelines.api.store import Obj, PipelineStore
from datapipelines.resources import API_VERSION, BATCH_KIND, CONNECTION_KIND, RUN_KIND
from datapipelines.resources.batch import PipelineBatch
from datapipelines.resources.run import KeptLog, LoadedSchema, PipelineRun, RunnerResult

RUNS = "pipelineruns"
BATCHES = "pipelinebatches"
CONNECTIONS = "pipelineconnections"

T0 = "2026-11-30T08:00:00Z"
KEY = "unit-test-key-0123456789"
OLD_KEY = "unit-test-old-key-9876543210"
AUTH = {"X-API-Key": KEY}


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    """RFC 7386 JSON merge patch, in place."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


#: A source of each type that the shared model (and the CRD) accept.
SOURCES: dict[str, Obj] = {
    "rest_api": {
        "restApi": {
            "baseUrl": "http://source.example/",
            "resources": [{"name": "items", "endpoint": {"path": "items"}}],
        }
    },
    "sql_database": {
        "sqlDatabase": {"credentialsSecretRef": {"name": "db", "key": "url"}, "tables": ["t"]}
    },
    "filesystem": {"filesystem": {"bucketUrl": "file:///data"}},
}


def connection(name: str, **spec: Any) -> Obj:
    """A PipelineConnection whose spec the shared model accepts (unless `spec` overrides make
    it one the model refuses, as a spec stored before a stricter CRD)."""
    body: dict[str, Any] = {
        "type": "rest_api",
        "enabled": True,
        "schemaName": name.replace("-", "_"),
        "concurrencyPolicy": "Forbid",
        "retries": 0,
        "timeoutSeconds": 60,
    }
    status = spec.pop("status", None)
    body.update(spec)
    if "source" not in body and body["type"] in SOURCES:
        body["source"] = copy.deepcopy(SOURCES[body["type"]])
    obj: Obj = {
        "apiVersion": API_VERSION,
        "kind": CONNECTION_KIND,
        "metadata": {"name": name, "namespace": "test", "resourceVersion": "1"},
        "spec": body,
    }
    if status is not None:
        obj["status"] = status
    return obj


class FakeStore(PipelineStore):
    def __init__(self, namespace: str = "test", *more: str) -> None:
        super().__init__()
        self.namespace = namespace  # where the helpers put objects unless told otherwise
        self.namespaces = [namespace, *more]
        self.ready = True
        self.unreachable = False  # writes fail as if the apiserver were gone
        self._catalog = Catalog()
        self._objects: dict[tuple[str, str, str], Obj] = {}  # (plural, namespace, name)
        self.deleted_jobs: list[str] = []
        self.patches: list[tuple[str, str, Obj]] = []
        self.report_reads: list[str] = []
        self.on_create_run: Callable[[Obj], None] | None = None
        self._rv = itertools.count(100)
        self._ids = itertools.count(1)
        self.started = False

    @property
    def catalog(self) -> Catalog:
        self.ensure_ready()
        return self._catalog

    @property
    def waiters(self):  # type: ignore[no-untyped-def]
        return self._catalog.waiters

    # test helpers ----------------------------------------------------------------------------
    def _put(self, plural: str, obj: Obj, kind: str = "MODIFIED") -> Obj:
        meta = obj["metadata"]
        meta.setdefault("namespace", self.namespace)
        model = {RUNS: PipelineRun, BATCHES: PipelineBatch}.get(plural)
        if model is not None:
            try:  # what the CRD's schema refuses never gets stored
                model.model_validate(obj)
            except ValidationError as exc:
                raise ValueError(f"the apiserver would refuse this {plural} object: {exc}") from exc
        meta["resourceVersion"] = str(next(self._rv))
        meta.setdefault("uid", f"uid-{plural}-{meta['namespace']}-{meta['name']}")
        self._objects[(plural, meta["namespace"], meta["name"])] = obj
        self._catalog.apply(plural, kind, copy.deepcopy(obj))
        return obj

    def _get(self, plural: str, name: str, namespace: str | None = None) -> Obj | None:
        return self._objects.get((plural, namespace or self.namespace, name))

    def add_connection(self, name: str, namespace: str | None = None, **spec: Any) -> Obj:
        """Add (or replace) a connection."""
        obj = connection(name, **spec)
        obj["metadata"]["namespace"] = namespace or self.namespace
        return self._put(CONNECTIONS, obj, "ADDED")

    def delete_connection(self, name: str, namespace: str | None = None) -> None:
        obj = self._objects.pop((CONNECTIONS, namespace or self.namespace, name))
        self._catalog.apply(CONNECTIONS, "DELETED", obj)

    def add_run(
        self,
        name: str,
        connection_name: str,
        phase: str | None = None,
        *,
        result: dict[str, Any] | None = None,
        batch: str | None = None,
        trigger: str = "api",
        namespace: str | None = None,
        **status: Any,
    ) -> Obj:
        labels = {
            "datapipelines.io/connection": connection_name,
            "datapipelines.io/trigger": trigger,
        }
        if batch:
            labels["datapipelines.io/batch"] = batch
        obj: Obj = {
            "apiVersion": API_VERSION,
            "kind": RUN_KIND,
            "metadata": {
                "name": name,
                "namespace": namespace or self.namespace,
                "labels": labels,
                "creationTimestamp": status.pop("creationTimestamp", T0),
            },
            "spec": {"connectionName": connection_name, "trigger": trigger},
        }
        st: dict[str, Any] = dict(status)
        if phase:
            st["phase"] = phase
        if result is not None:
            st["result"] = result
        if st:
            obj["status"] = st
        return self._put(RUNS, obj, "ADDED")

    def add_batch(
        self,
        name: str,
        connections: list[str],
        namespace: str | None = None,
        *,
        cancel_requested: bool = False,
        **status: Any,
    ) -> Obj:
        obj: Obj = {
            "apiVersion": API_VERSION,
            "kind": BATCH_KIND,
            "metadata": {
                "name": name,
                "namespace": namespace or self.namespace,
                "creationTimestamp": T0,
                "labels": {"datapipelines.io/trigger": "api"},
            },
            "spec": {"connections": connections},
        }
        if cancel_requested:
            obj["spec"]["cancelRequested"] = True
        if status:
            obj["status"] = dict(status)
        return self._put(BATCHES, obj, "ADDED")

    def update_run_status(self, name: str, *, namespace: str | None = None, **status: Any) -> Obj:
        run = self._get(RUNS, name, namespace)
        assert run is not None, name
        merge(run.setdefault("status", {}), status)
        return self._put(RUNS, run)

    def update_batch_status(self, name: str, *, namespace: str | None = None, **status: Any) -> Obj:
        """What the operator writes into a batch's status (a JSON merge patch)."""
        batch = self._get(BATCHES, name, namespace)
        assert batch is not None, name
        merge(batch.setdefault("status", {}), status)
        return self._put(BATCHES, batch)

    def finish_run(
        self, name: str, phase: str = "Succeeded", *, namespace: str | None = None, **result: Any
    ) -> Obj:
        body = {
            "success": phase == "Succeeded",
            "durationMs": 1500,
            "rowsInserted": 10,
            "recordsReported": 10,
            "progressCounts": {"extract": {"items": 10}},
            "error": None if phase == "Succeeded" else "boom",
            "report": "loaded 10 rows",
            "reportTruncated": False,
        }
        body.update(result)
        return self.update_run_status(
            name,
            namespace=namespace,
            phase=phase,
            startTime=T0,
            completionTime="2026-11-30T08:00:02Z",
            attempts=1,
            result=body,
        )

    def delete_run(self, name: str, namespace: str | None = None) -> None:
        run = self._objects.pop((RUNS, namespace or self.namespace, name))
        self._catalog.apply(RUNS, "DELETED", run)

    def run_obj(self, name: str, namespace: str | None = None) -> Obj | None:
        """The run as the (fake) apiserver holds it."""
        return self._get(RUNS, name, namespace)

    def batch_obj(self, name: str, namespace: str | None = None) -> Obj | None:
        return self._get(BATCHES, name, namespace)

    # PipelineStore ---------------------------------------------------------------------------
    async def start(self) -> None:
        self.started = True

    def readiness(self) -> tuple[bool, str]:
        return (True, "synced") if self.ready else (False, "connection refused (fake)")

    def _check_reachable(self, what: str) -> None:
        if self.unreachable:
            raise KubeUnavailable(f"{what}: Kubernetes API not reachable (fake)")

    def _stamp(self, namespace: str, manifest: Obj) -> Obj:
        obj = copy.deepcopy(manifest)
        meta = obj["metadata"]
        if "name" not in meta:
            meta["name"] = meta.pop("generateName", "x-") + f"{next(self._ids):05d}"
        meta["namespace"] = namespace
        meta["creationTimestamp"] = now()
        return obj

    async def create_run(self, namespace: str, manifest: Obj) -> PipelineRun:
        self._check_reachable("creating the PipelineRun")
        obj = self._put(RUNS, self._stamp(namespace, manifest), "ADDED")
        if self.on_create_run is not None:
            self.on_create_run(obj)
        run, _ = parse_run(copy.deepcopy(obj))
        assert run is not None
        return run

    async def create_batch(self, namespace: str, manifest: Obj) -> PipelineBatch:
        self._check_reachable("creating the PipelineBatch")
        obj = self._stamp(namespace, manifest)
        if (BATCHES, namespace, obj["metadata"]["name"]) in self._objects:
            raise Conflict("pipelinebatches: already exists")
        self._put(BATCHES, obj, "ADDED")
        batch = parse_batch(copy.deepcopy(obj))
        assert batch is not None
        return batch

    async def patch_run(self, run: PipelineRun, patch: Obj) -> PipelineRun:
        self._check_reachable("patching")
        obj = self._get(RUNS, run.name, run.namespace)
        if obj is None:
            raise NotFound(f"pipelineruns/{run.name} not found")
        merge(obj, patch)
        self.patches.append(("run", run.name, patch))
        self._put(RUNS, obj)
        updated, _ = parse_run(copy.deepcopy(obj))
        assert updated is not None
        return updated

    async def patch_batch(self, batch: PipelineBatch, patch: Obj) -> PipelineBatch:
        self._check_reachable("patching")
        name = batch.metadata.name
        obj = self._get(BATCHES, name, batch.metadata.namespace)
        if obj is None:
            raise NotFound(f"pipelinebatches/{name} not found")
        merge(obj, patch)
        self.patches.append(("batch", name, patch))
        self._put(BATCHES, obj)
        updated = parse_batch(copy.deepcopy(obj))
        assert updated is not None
        return updated

    async def delete_run_job(self, run: PipelineRun) -> bool:
        self._check_reachable("deleting the Job")
        self.deleted_jobs.append(run.status.job_name or run.name)
        return True

    async def connection_manifest(self, namespace: str, name: str) -> Obj | None:
        self._check_reachable("reading the connection")
        return self._get(CONNECTIONS, name, namespace)

    async def kept_log(self, run: PipelineRun) -> KeptLog | None:
        """As KubeStore: read from the object."""
        result = self._runner_result(run)
        return result.log if result is not None else None

    async def loaded_schema(self, run: PipelineRun) -> LoadedSchema | None:
        """As KubeStore: read from the object."""
        result = self._runner_result(run)
        return result.loaded_schema if result is not None else None

    def _runner_result(self, run: PipelineRun) -> RunnerResult | None:
        self._check_reachable("reading the run")
        obj = self._get(RUNS, run.name, run.namespace)
        return None if obj is None else PipelineRun.model_validate(obj).status.runner_result

    async def report(self, run: PipelineRun) -> str | None:
        """As KubeStore: only for a run the catalog saw with a report, read from the object."""
        if run.metadata.key not in self._catalog.reports:
            return None
        self._check_reachable("reading the run")
        self.report_reads.append(run.name)
        obj = self._get(RUNS, run.name, run.namespace)
        if obj is None:
            return None
        return PipelineRun.model_validate(obj).report()
