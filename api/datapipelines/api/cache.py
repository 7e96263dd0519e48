"""A watch-fed cache of the namespace's PipelineConnections, PipelineRuns and PipelineBatches.

Each resource is kept by one `ResourceWatch`: list (paginated) to get a consistent snapshot and
its resourceVersion, then watch from that resourceVersion with bookmarks; a watch that ends
normally is resumed from the last resourceVersion seen, a `410 Gone` triggers a fresh list, and
connection errors are retried with capped exponential backoff (the cache reports not-synced
meanwhile, so requests answer 503 instead of stale data).

Synchronous runs wait on a Future per run name that the runs watch resolves when the run reaches
a terminal phase (or disappears): no thread is held and nothing polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import Callable
from typing import Any

import aiohttp
from kubernetes_asyncio.client.exceptions import ApiException

from datapipelines.api.mapping import is_terminal, name_of
from datapipelines.resources import (
    BATCH_PLURAL,
    CONNECTION_PLURAL,
    GROUP,
    RUN_PLURAL,
    VERSION,
)

log = logging.getLogger(__name__)

Obj = dict[str, Any]
ChangeHandler = Callable[[str, Obj], None]
LIST_PAGE_SIZE = 500


# `kubernetes_asyncio.client.CustomObjectsApi`, or anything with its
# `list_namespaced_custom_object(group, version, namespace, plural, **kwargs)`.
CustomObjectsLister = Any


class Gone(Exception):
    """The resourceVersion is too old (410): list again."""


class Backoff:
    """Capped exponential backoff with jitter."""

    def __init__(self, initial: float = 0.5, maximum: float = 30.0) -> None:
        self.initial, self.maximum = initial, maximum
        self.current = initial

    def next(self) -> float:
        delay = self.current
        self.current = min(self.maximum, self.current * 2)
        return delay * random.uniform(0.8, 1.2)

    def reset(self) -> None:
        self.current = self.initial


def rv_newer(candidate: str | None, current: str | None) -> bool:
    """Whether resourceVersion `candidate` is newer than `current`.

    resourceVersions are opaque, but etcd-backed apiservers use increasing integers; when they
    are not integers, the candidate (the later write we know of) wins.
    """
    if current is None:
        return True
    try:
        return int(candidate or 0) > int(current)
    except ValueError:
        return True


def describe_error(exc: BaseException) -> str:
    if isinstance(exc, ApiException):
        return f"apiserver answered {exc.status} {exc.reason}".strip()
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text != type(exc).__name__ else text


class ResourceWatch:
    """List+watch of one custom resource in one namespace, kept in a dict by name."""

    def __init__(
        self,
        api: CustomObjectsLister,
        namespace: str,
        plural: str,
        *,
        on_change: ChangeHandler | None = None,
        watch_timeout: int = 300,
        backoff: Backoff | None = None,
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.plural = plural
        self.objects: dict[str, Obj] = {}
        self.resource_version: str | None = None
        self.synced = False
        self.last_error: str | None = "not listed yet"
        self.lists = 0
        self._on_change = on_change
        self._watch_timeout = watch_timeout
        self._backoff = backoff or Backoff()

    # the loop --------------------------------------------------------------------------------
    async def run(self) -> None:
        need_list = True
        while True:
            try:
                if need_list:
                    await self.list_once()
                    need_list = False
                await self.watch_once()
                self._backoff.reset()
            except Gone:
                log.info("watch expired, listing again", extra={"resource": self.plural})
                need_list = True
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.synced = False
                self.last_error = describe_error(exc)
                delay = self._backoff.next()
                log.warning(
                    "watch failed, retrying",
                    extra={
                        "resource": self.plural,
                        "error": self.last_error,
                        "retry_in_s": round(delay, 2),
                    },
                )
                if isinstance(exc, ApiException) and exc.status == 410:
                    need_list = True
                await asyncio.sleep(delay)

    async def list_once(self) -> None:
        """List all objects (paginated) and replace the cache with the snapshot."""
        items: dict[str, Obj] = {}
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"limit": LIST_PAGE_SIZE, "_request_timeout": (10, 60)}
            if token:
                kwargs["_continue"] = token
            try:
                page = await self.api.list_namespaced_custom_object(
                    GROUP, VERSION, self.namespace, self.plural, **kwargs
                )
            except ApiException as exc:
                if exc.status == 410 and token:  # the continue token expired: start over
                    items, token = {}, None
                    continue
                raise
            for item in page.get("items") or []:
                items[name_of(item)] = item
            meta = page.get("metadata") or {}
            token = meta.get("continue") or None
            if not token:
                list_rv = meta.get("resourceVersion")
                break
        self._replace(items, list_rv)
        self.lists += 1
        self.synced = True
        self.last_error = None

    def _replace(self, items: dict[str, Obj], list_rv: str | None) -> None:
        old = self.objects
        for name, obj in old.items():
            # Keep what we wrote ourselves after the snapshot was taken (read-your-writes).
            if name not in items and rv_newer(_rv(obj), list_rv):
                items[name] = obj
        self.objects = items
        self.resource_version = list_rv
        for name, obj in old.items():
            if name not in items:
                self._notify("DELETED", obj)
        for name, obj in items.items():
            prev = old.get(name)
            if prev is None or _rv(prev) != _rv(obj):
                self._notify("ADDED" if prev is None else "MODIFIED", obj)

    async def watch_once(self) -> None:
        """One watch request, from the last resourceVersion, until the server ends it."""
        timeout = self._watch_timeout
        resp = await self.api.list_namespaced_custom_object(
            GROUP,
            VERSION,
            self.namespace,
            self.plural,
            watch=True,
            allow_watch_bookmarks=True,
            resource_version=self.resource_version,
            timeout_seconds=timeout,
            _preload_content=False,
            _request_timeout=aiohttp.ClientTimeout(
                sock_connect=10, sock_read=timeout + 30, total=timeout + 60
            ),
        )
        try:
            status = getattr(resp, "status", 200)
            if not 200 <= status <= 299:  # _preload_content=False does not raise by itself
                body = (await resp.read()).decode(errors="replace")[:500]
                if status == 410:
                    raise Gone(body)
                raise ApiException(status=status, reason=body)
            self.synced = True
            self.last_error = None
            buffer = b""
            async for chunk in resp.content.iter_any():
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        self.handle_event(json.loads(line))
            if buffer.strip():
                self.handle_event(json.loads(buffer))
        finally:
            resp.release()

    # events ----------------------------------------------------------------------------------
    def handle_event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        obj = event.get("object") or {}
        if kind == "ERROR":
            code = obj.get("code")
            if code == 410:
                raise Gone(obj.get("message"))
            raise ApiException(status=code or 500, reason=obj.get("message") or "watch error")
        rv = _rv(obj)
        if kind == "BOOKMARK":
            if rv:
                self.resource_version = rv
            return
        name = name_of(obj)
        if kind in ("ADDED", "MODIFIED"):
            self.objects[name] = obj
        elif kind == "DELETED":
            self.objects.pop(name, None)
        else:
            log.debug("ignoring watch event", extra={"type": kind})
            return
        if rv:
            self.resource_version = rv
        self._notify(str(kind), obj)

    def apply_local(self, obj: Obj) -> None:
        """Record an object we just wrote, unless the watch already delivered something newer."""
        name = name_of(obj)
        prev = self.objects.get(name)
        if prev is None or rv_newer(_rv(obj), _rv(prev)):
            self.objects[name] = obj
            self._notify("ADDED" if prev is None else "MODIFIED", obj)

    def _notify(self, kind: str, obj: Obj) -> None:
        if self._on_change is not None:
            try:
                self._on_change(kind, obj)
            except Exception:  # a broken listener must not break the watch
                log.exception("cache listener failed")


def _rv(obj: Obj) -> str | None:
    return (obj.get("metadata") or {}).get("resourceVersion")


class RunWaiters:
    """Futures per run name, resolved when the run is terminal (the object) or deleted (None)."""

    def __init__(self) -> None:
        self._waiters: dict[str, set[asyncio.Future[Obj | None]]] = {}

    def __len__(self) -> int:
        return sum(len(s) for s in self._waiters.values())

    def on_change(self, kind: str, run: Obj) -> None:
        name = name_of(run)
        if name not in self._waiters:
            return
        if kind == "DELETED":
            self._resolve(name, None)
        elif is_terminal(run):
            self._resolve(name, run)

    def _resolve(self, name: str, value: Obj | None) -> None:
        for fut in self._waiters.pop(name, set()):
            if not fut.done():
                fut.set_result(value)

    async def wait(self, name: str, current: Obj | None) -> Obj | None:
        """Wait for the end of run `name`; `current` is its cached object right now."""
        if current is None:
            return None
        if is_terminal(current):
            return current
        fut: asyncio.Future[Obj | None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(name, set()).add(fut)
        try:
            return await fut
        finally:
            waiting = self._waiters.get(name)
            if waiting is not None:
                waiting.discard(fut)
                if not waiting:
                    del self._waiters[name]


class WatchCache:
    """The three resource watches of one namespace and the run waiters."""

    def __init__(self, api: CustomObjectsLister, namespace: str, *, watch_timeout: int = 300):
        self.namespace = namespace
        self.waiters = RunWaiters()
        self.connections = ResourceWatch(
            api, namespace, CONNECTION_PLURAL, watch_timeout=watch_timeout
        )
        self.runs = ResourceWatch(
            api,
            namespace,
            RUN_PLURAL,
            on_change=self.waiters.on_change,
            watch_timeout=watch_timeout,
        )
        self.batches = ResourceWatch(api, namespace, BATCH_PLURAL, watch_timeout=watch_timeout)
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def watches(self) -> tuple[ResourceWatch, ...]:
        return (self.connections, self.runs, self.batches)

    def start(self) -> None:
        for watch in self.watches:
            self._tasks.append(asyncio.create_task(watch.run(), name=f"watch-{watch.plural}"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()

    def readiness(self) -> tuple[bool, str]:
        pending = [w for w in self.watches if not w.synced]
        if not pending:
            return True, "synced"
        return False, "; ".join(f"{w.plural}: {w.last_error or 'not synced'}" for w in pending)

    async def wait_for_run_end(self, name: str) -> Obj | None:
        return await self.waiters.wait(name, self.runs.objects.get(name))
