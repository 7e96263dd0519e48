"""The API's memory of the cluster: typed projections of connections, runs and batches of every
watched namespace, indexed so that each answer costs O(1) per connection.

Pure (no I/O): the watches (``cache.py``) and the unit tests' fake store feed it the same
events. Runs are kept without their report text (up to 16 KiB each; a report is read on demand
from the apiserver). Per connection the catalog knows its runs, so its active runs and its last
finished run are found without scanning other connections' runs; ``GET /connections`` joins
per-connection JSON fragments that are rebuilt only when that connection or its runs change.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from datapipelines.resources import LABEL_BATCH, LABEL_CONNECTION
from datapipelines.resources.batch import PipelineBatch
from datapipelines.resources.connection import (
    ConnectionSpec,
    ConnectionStatus,
    PipelineConnection,
)
from datapipelines.resources.meta import ObjectMeta
from datapipelines.resources.run import PipelineRun, RunPhase, is_terminal
from datapipelines.resources.times import EPOCH, time_key

Obj = dict[str, Any]
Key = tuple[str, str]  # (namespace, name)


# --------------------------------------------------------------------------- projections


@dataclass(frozen=True)
class ConnectionSummary:
    """What the API needs of a connection (its spec's free-form dlt config is not kept)."""

    namespace: str
    name: str
    uid: str
    type: str
    enabled: bool
    schema_name: str
    concurrency_policy: str
    schedule: str | None
    timeout_seconds: int
    retries: int
    status: ConnectionStatus
    ready: bool | None = None
    ready_reason: str | None = None
    time_zone: str | None = None

    @property
    def key(self) -> Key:
        return (self.namespace, self.name)


def _default(field: str) -> Any:
    """The shared model's default of a spec field: one source for the fallback below."""
    return ConnectionSpec.model_fields[field].get_default(call_default_factory=True)


def _int(value: Any, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except (TypeError, ValueError):
        return default


def summarize_connection(obj: Obj) -> ConnectionSummary:
    """Through the shared model; a spec the model refuses (stored before a stricter CRD) is
    still listed, from its raw fields, so the API never hides a connection."""
    meta = ObjectMeta.model_validate(obj.get("metadata") or {})
    raw = obj.get("spec") or {}
    try:
        conn = PipelineConnection.model_validate(obj)
        spec = conn.spec
        fields = dict(
            type=spec.type.value,
            enabled=spec.enabled,
            schema_name=spec.schema_name,
            concurrency_policy=spec.concurrency_policy.value,
            schedule=spec.schedule,
            time_zone=spec.time_zone,
            timeout_seconds=spec.timeout_seconds,
            retries=spec.retries,
        )
        status = conn.status
    except ValidationError:
        fields = dict(
            type=str(raw.get("type") or ""),
            enabled=bool(raw.get("enabled", _default("enabled"))),
            schema_name=str(raw.get("schemaName") or ""),
            concurrency_policy=str(
                raw.get("concurrencyPolicy") or _default("concurrency_policy").value
            ),
            schedule=raw.get("schedule"),
            time_zone=raw.get("timeZone"),
            timeout_seconds=_int(raw.get("timeoutSeconds"), _default("timeout_seconds")),
            retries=_int(raw.get("retries"), _default("retries")),
        )
        try:
            status = ConnectionStatus.model_validate(obj.get("status") or {})
        except ValidationError:
            status = ConnectionStatus()
    ready = next((c for c in status.conditions if c.type == "Ready"), None)
    return ConnectionSummary(
        namespace=meta.namespace,
        name=meta.name,
        uid=meta.uid,
        status=status,
        ready=None if ready is None else ready.status.value == "True",
        ready_reason=None if ready is None else ready.reason,
        **fields,  # type: ignore[arg-type]
    )


#: Parts of a run's result read on demand (GET of the run), never kept in memory.
HEAVY_RESULT_FIELDS = ("report", "loadedSchema", "log")


def parse_run(obj: Obj) -> tuple[PipelineRun | None, bool]:
    """The run without its report texts and loaded schema (read on demand), and whether it had
    a report."""
    data = dict(obj)
    status = dict(data.get("status") or {})
    had_report = False
    for key in ("runnerResult", "result"):
        part = status.get(key)
        if isinstance(part, dict) and any(k in part for k in HEAVY_RESULT_FIELDS):
            had_report = had_report or bool(part.get("report"))
            status[key] = {k: v for k, v in part.items() if k not in HEAVY_RESULT_FIELDS}
    data["status"] = status
    try:
        return PipelineRun.model_validate(data), had_report
    except ValidationError:
        return None, had_report


def parse_batch(obj: Obj) -> PipelineBatch | None:
    try:
        return PipelineBatch.model_validate(obj)
    except ValidationError:
        return None


def run_recency(run: PipelineRun) -> tuple[datetime, datetime, str]:
    """Sort key, newest last: finish time, then start/creation time, then name."""
    st = run.status
    started = st.start_time or st.queued_at or run.metadata.creation_timestamp
    return (time_key(st.completion_time, started), time_key(started), run.name)


def queue_order(run: PipelineRun) -> tuple[datetime, int, str]:
    return run.order()


# --------------------------------------------------------------------------- waiting


class _Mailbox:
    """One slot: the newest change of a followed run (older ones coalesce, a final one stays)."""

    def __init__(self) -> None:
        self._change: tuple[str, PipelineRun] | None = None
        self._final = False
        self._ready = asyncio.Event()

    def put(self, kind: str, run: PipelineRun) -> None:
        if self._final:
            return
        self._change = (kind, run)
        self._final = kind == "DELETED" or run.terminal
        self._ready.set()

    async def take(self) -> tuple[str, PipelineRun]:
        await self._ready.wait()
        self._ready.clear()
        assert self._change is not None
        change, self._change = self._change, None
        return change


class RunWaiters:
    """Futures per run, resolved when the run is terminal (the run) or deleted (None); and
    followers per run, handed every change until then (:meth:`updates`). No polling."""

    def __init__(self) -> None:
        self._waiters: dict[Key, set[asyncio.Future[PipelineRun | None]]] = {}
        self._followers: dict[Key, set[_Mailbox]] = {}

    def __len__(self) -> int:
        return sum(len(s) for s in self._waiters.values()) + sum(
            len(s) for s in self._followers.values()
        )

    def on_change(self, kind: str, run: PipelineRun) -> None:
        key = (run.namespace, run.name)
        for box in self._followers.get(key, ()):
            box.put(kind, run)
        if key not in self._waiters:
            return
        if kind == "DELETED":
            self._resolve(key, None)
        elif run.terminal:
            self._resolve(key, run)

    def _resolve(self, key: Key, value: PipelineRun | None) -> None:
        for fut in self._waiters.pop(key, set()):
            if not fut.done():
                fut.set_result(value)

    async def wait(self, current: PipelineRun | None) -> PipelineRun | None:
        """Wait for the end of a run; ``current`` is its cached object right now."""
        if current is None or current.terminal:
            return current
        key = (current.namespace, current.name)
        fut: asyncio.Future[PipelineRun | None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(key, set()).add(fut)
        try:
            return await fut
        finally:
            waiting = self._waiters.get(key)
            if waiting is not None:
                waiting.discard(fut)
                if not waiting:
                    del self._waiters[key]

    async def updates(self, current: PipelineRun | None) -> AsyncGenerator[PipelineRun, None]:
        """The run now, then at each change, until it is terminal or deleted (a last run that
        is not terminal was deleted)."""
        if current is None:
            return
        key = (current.namespace, current.name)
        box = _Mailbox()
        self._followers.setdefault(key, set()).add(box)
        try:
            yield current
            if current.terminal:
                return
            while True:
                kind, run = await box.take()
                yield run
                if kind == "DELETED" or run.terminal:
                    return
        finally:
            boxes = self._followers.get(key)
            if boxes is not None:
                boxes.discard(box)
                if not boxes:
                    del self._followers[key]


# --------------------------------------------------------------------------- the catalog

Renderer = Callable[["Catalog", ConnectionSummary], bytes]


@dataclass
class _ConnectionEntry:
    summary: ConnectionSummary
    fragment: bytes | None = None  # rendered JSON of GET /connections' item, None = stale


@dataclass
class Catalog:
    """Every watched object, indexed; fed by :meth:`apply`."""

    connections: dict[Key, _ConnectionEntry] = field(default_factory=dict)
    connection_namespaces: dict[str, set[str]] = field(default_factory=dict)
    connections_per_namespace: dict[str, int] = field(default_factory=dict)
    runs: dict[Key, PipelineRun] = field(default_factory=dict)
    run_namespaces: dict[str, set[str]] = field(default_factory=dict)
    runs_by_connection: dict[Key, set[str]] = field(default_factory=dict)
    runs_by_batch: dict[Key, set[str]] = field(default_factory=dict)
    reports: set[Key] = field(default_factory=set)
    batches: dict[Key, PipelineBatch] = field(default_factory=dict)
    batch_namespaces: dict[str, set[str]] = field(default_factory=dict)
    waiters: RunWaiters = field(default_factory=RunWaiters)
    generation: int = 0
    """Counts the events applied: a reader that saw it unchanged has seen everything."""
    _sorted: list[Key] | None = None
    _changed: asyncio.Event | None = None

    # ------------------------------------------------------------------ feeding

    def apply(self, plural: str, kind: str, obj: Obj) -> None:
        """One watch event (``ADDED``/``MODIFIED``/``DELETED``) of ``plural``'s object."""
        self.generation += 1
        if self._changed is not None:
            self._changed.set()
            self._changed = None
        if plural == "pipelineconnections":
            self._connection(kind, obj)
        elif plural == "pipelineruns":
            self._run(kind, obj)
        elif plural == "pipelinebatches":
            self._batch(kind, obj)

    def _connection(self, kind: str, obj: Obj) -> None:
        meta = obj.get("metadata") or {}
        key: Key = (meta.get("namespace", ""), meta.get("name", ""))
        if kind == "DELETED":
            if self.connections.pop(key, None) is not None:
                _discard(self.connection_namespaces, key[1], key[0])
                left = self.connections_per_namespace[key[0]] - 1
                if left:
                    self.connections_per_namespace[key[0]] = left
                else:
                    del self.connections_per_namespace[key[0]]
                self._sorted = None
            return
        if key not in self.connections:
            self._sorted = None
            self.connections_per_namespace[key[0]] = (
                self.connections_per_namespace.get(key[0], 0) + 1
            )
        self.connections[key] = _ConnectionEntry(summarize_connection(obj))
        self.connection_namespaces.setdefault(key[1], set()).add(key[0])

    def _stale(self, namespace: str, connection: str) -> None:
        entry = self.connections.get((namespace, connection))
        if entry is not None:
            entry.fragment = None

    def _run(self, kind: str, obj: Obj) -> None:
        meta = obj.get("metadata") or {}
        key: Key = (meta.get("namespace", ""), meta.get("name", ""))
        old = self.runs.get(key)
        run, had_report = parse_run(obj)
        if kind == "DELETED" or run is None:
            if old is not None:
                del self.runs[key]
                self._unindex(key, old)
                self.reports.discard(key)
            # A relist reports a vanished run by its name only (and a refused object is
            # dropped): whoever waits for it is told with the run as last known.
            gone = run or old
            if gone is not None:
                self.waiters.on_change("DELETED", gone)
            return
        if old is not None:
            self._unindex(key, old)
        self.runs[key] = run
        if had_report:
            self.reports.add(key)
        else:
            self.reports.discard(key)
        self.run_namespaces.setdefault(key[1], set()).add(key[0])
        conn = run.spec.connection_name or run.metadata.labels.get(LABEL_CONNECTION, "")
        self.runs_by_connection.setdefault((key[0], conn), set()).add(key[1])
        batch = run.metadata.labels.get(LABEL_BATCH)
        if batch:
            self.runs_by_batch.setdefault((key[0], batch), set()).add(key[1])
        self._stale(key[0], conn)
        self.waiters.on_change("ADDED" if old is None else "MODIFIED", run)

    def _unindex(self, key: Key, run: PipelineRun) -> None:
        _discard(self.run_namespaces, key[1], key[0])
        conn = run.spec.connection_name or run.metadata.labels.get(LABEL_CONNECTION, "")
        _discard(self.runs_by_connection, (key[0], conn), key[1])
        batch = run.metadata.labels.get(LABEL_BATCH)
        if batch:
            _discard(self.runs_by_batch, (key[0], batch), key[1])
        self._stale(key[0], conn)

    def _batch(self, kind: str, obj: Obj) -> None:
        meta = obj.get("metadata") or {}
        key: Key = (meta.get("namespace", ""), meta.get("name", ""))
        if kind == "DELETED":
            if self.batches.pop(key, None) is not None:
                _discard(self.batch_namespaces, key[1], key[0])
            return
        batch = parse_batch(obj)
        if batch is None:
            return
        self.batches[key] = batch
        self.batch_namespaces.setdefault(key[1], set()).add(key[0])

    async def changed_since(self, generation: int) -> int:
        """Wait (no polling) until an event was applied after `generation`; the new one."""
        while self.generation == generation:
            if self._changed is None:
                self._changed = asyncio.Event()
            await self._changed.wait()
        return self.generation

    # ------------------------------------------------------------------ reads

    def connection_keys_named(self, name: str) -> list[Key]:
        return sorted((ns, name) for ns in self.connection_namespaces.get(name, ()))

    def connection(self, key: Key) -> ConnectionSummary | None:
        entry = self.connections.get(key)
        return entry.summary if entry else None

    def sorted_connections(self) -> list[Key]:
        if self._sorted is None:
            self._sorted = sorted(self.connections, key=lambda k: (k[1], k[0]))
        return self._sorted

    def runs_of(self, key: Key) -> list[PipelineRun]:
        ns = key[0]

        return [
            self.runs[(ns, n)] for n in self.runs_by_connection.get(key, ()) if (ns, n) in self.runs
        ]

    def active_runs(self, key: Key) -> list[PipelineRun]:
        """The connection's unfinished runs, in queue order."""
        return sorted((r for r in self.runs_of(key) if not r.terminal), key=queue_order)

    def last_finished(self, key: Key) -> PipelineRun | None:
        """The connection's newest run that started and ended."""
        ended = [r for r in self.runs_of(key) if r.terminal and r.status.start_time is not None]
        return max(ended, key=run_recency) if ended else None

    def run_keys_named(self, name: str) -> list[Key]:
        return sorted((ns, name) for ns in self.run_namespaces.get(name, ()))

    def batch_keys_named(self, name: str) -> list[Key]:
        return sorted((ns, name) for ns in self.batch_namespaces.get(name, ()))

    def runs_of_batch(self, key: Key) -> list[PipelineRun]:
        ns, _ = key
        return [self.runs[(ns, n)] for n in self.runs_by_batch.get(key, ()) if (ns, n) in self.runs]

    def finished_runs(self) -> list[PipelineRun]:
        return [r for r in self.runs.values() if r.terminal]

    def fragment(self, key: Key, render: Renderer) -> bytes:
        """The JSON of one connection's list item, rendered once per change."""
        entry = self.connections[key]
        if entry.fragment is None:
            entry.fragment = render(self, entry.summary)
        return entry.fragment


def _discard(index: dict[Any, set[str]], key: Any, value: str) -> None:
    values = index.get(key)
    if values is not None:
        values.discard(value)
        if not values:
            del index[key]


__all__ = [
    "EPOCH",
    "Catalog",
    "ConnectionSummary",
    "RunPhase",
    "RunWaiters",
    "is_terminal",
    "parse_run",
    "run_recency",
    "summarize_connection",
]
