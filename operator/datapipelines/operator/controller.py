"""The reconcile loop: keys from events → the work queue → gather, decide, apply.

Keys: ``("conn", namespace, name)`` for a connection and all its runs, ``("batch", namespace,
name)`` for a batch. Every watch event maps to one or two keys (``registration.py``); nothing
else starts work. Connections that write the same destination reconcile one at a time (the
destination mutex), so two of them never both see it free.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Hashable
from typing import Any

from datapipelines.resources.times import utcnow

from . import events
from .archive import Archive
from .config import Settings
from .executor import Executor
from .kube import Kube, NotLeading
from .reconcile import batch as batch_reconcile
from .reconcile import connection as connection_reconcile
from .reconcile.actions import Decision, Event, connection_ref
from .store import Store
from .workqueue import WorkQueue

log = logging.getLogger("datapipelines.operator")


class Controller:
    def __init__(
        self,
        kube: Kube,
        store: Store,
        settings: Settings,
        archive: Archive | None = None,
        *,
        in_shard: Any = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.executor = Executor(kube, store, settings, archive)
        self.queue = WorkQueue(self.reconcile, workers=settings.workers, on_failure=self._failed)
        self._dest_locks: dict[str, asyncio.Lock] = {}
        self._background: set[asyncio.Task[None]] = set()
        self.in_shard = in_shard or (lambda namespace: True)

    def add(self, key: Hashable, *, low: bool = False) -> None:
        if isinstance(key, tuple) and len(key) == 3 and not self.in_shard(key[1]):
            return
        self.queue.add(key, low=low)

    async def reconcile(self, key: Any) -> float | None:
        kind, namespace, name = key
        if not self.in_shard(namespace):
            return None
        try:
            if kind == "conn":
                decision = await self._connection(namespace, name)
            elif kind == "batch":
                state = batch_reconcile.gather(self.store, namespace, name)
                decision = batch_reconcile.decide(state, self.settings, utcnow())
                decision = await self._apply(decision)
            else:
                return None
        except NotLeading:
            events.RECONCILES.labels(kind, "not-leading").inc()
            raise
        except Exception:
            events.RECONCILES.labels(kind, "error").inc()
            raise
        events.RECONCILES.labels(kind, "ok").inc()
        gone = kind == "conn" and self.store.connection(namespace, name) is None
        if gone and not self.store.runs_of(namespace, name):  # nothing of it left: forget it
            events.forget_connection(namespace, name)
            self.queue.forget(key)
        if self.queue.failures.get(key):
            events.FAILING_KEYS.set(len(self.queue.failures) - 1)
        for other in decision.wake:
            self.add(other)
        return decision.requeue_after

    def _failed(self, key: Any, count: int, error: BaseException) -> None:
        """A reconcile failed ``count`` times in a row: the gauge, and a Warning Event on the
        connection at the 3rd failure and every 10th after (not one per retry)."""
        events.FAILING_KEYS.set(len(self.queue.failures))
        kind, namespace, name = key
        if kind != "conn" or not (count == 3 or count % 10 == 0):
            return
        conn = self.store.connection(namespace, name)
        if conn is None:
            return
        message = (
            f"reconcile failed {count} times in a row; retrying with backoff: "
            f"{type(error).__name__}: {str(error)[:500]}"
        )
        event = Event(connection_ref(conn), "Warning", "ReconcileFailed", message)
        task = asyncio.create_task(self.executor.post_events((event,)))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _connection(self, namespace: str, name: str) -> Decision:
        conn = self.store.connection(namespace, name)
        dest = conn.destination if conn is not None else None
        if dest is None:
            state = connection_reconcile.gather(self.store, namespace, name)
            return await self._apply(connection_reconcile.decide(state, self.settings, utcnow()))
        lock = self._dest_locks.setdefault(dest.key, asyncio.Lock())
        async with lock:
            state = connection_reconcile.gather(self.store, namespace, name)
            return await self._apply(connection_reconcile.decide(state, self.settings, utcnow()))

    async def _apply(self, decision: Decision) -> Decision:
        outcome = await self.executor.apply(decision.actions)
        if outcome.requeue_after is not None:
            decision.after(outcome.requeue_after)
        decision.wake |= outcome.wake
        return decision

    def resync(self) -> int:
        """The safety pass: every connection with runs, and every batch, from the index (no
        LIST), at low priority: they wait behind every key an event adds. Keys already queued
        are not queued twice."""
        keys = {("conn", ns, name) for ns, name in self.store.run_connections()}
        keys |= {("conn", ns, name) for ns, name in self.store.connection_keys()}
        keys |= {("batch", ns, name) for ns, name in self.store.batch_keys()}
        for key in keys:
            self.add(key, low=True)
        return len(keys)
