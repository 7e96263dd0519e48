"""The watches that feed the catalog: one list+watch per custom resource, cluster-wide or per
watched namespace.

Each ``ResourceWatch`` lists (paginated) to get a consistent snapshot and its resourceVersion,
then watches from there with bookmarks; a watch that ends normally is resumed from the last
resourceVersion seen, ``410 Gone`` triggers a fresh list, and connection errors are retried
with capped exponential backoff (the cache reports not-synced meanwhile, so requests answer 503
instead of stale data). Objects go to a sink (the :class:`~datapipelines.api.catalog.Catalog`);
a watch keeps only each object's resourceVersion, for relists and read-your-writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import Callable
from typing import Any

from datapipelines.api.apiserver import ApiServer, ApiServerError, custom_path, timeout_of
from datapipelines.api.catalog import Catalog
from datapipelines.api.metrics import code_of, count_request
from datapipelines.resources import BATCH_PLURAL, CONNECTION_PLURAL, GROUP, RUN_PLURAL, VERSION
from datapipelines.resources.memory import freeze_long_lived

log = logging.getLogger(__name__)

Obj = dict[str, Any]
Key = tuple[str, str]
LIST_PAGE_SIZE = 500
EVENTS_PER_TURN = 64  # watch events handled before the event loop serves others
PLURALS = (CONNECTION_PLURAL, RUN_PLURAL, BATCH_PLURAL)

Sink = Callable[[str, str, Obj], None]


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
    """Whether resourceVersion ``candidate`` is newer than ``current`` (etcd revisions are
    increasing integers; when they are not integers, the candidate wins)."""
    if current is None:
        return True
    try:
        return int(candidate or 0) > int(current)
    except ValueError:
        return True


def describe_error(exc: BaseException) -> str:
    if isinstance(exc, ApiServerError):
        return f"apiserver answered {exc.status} {exc.reason}".strip()
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text != type(exc).__name__ else text


def _key(obj: Obj) -> Key:
    meta = obj.get("metadata") or {}
    return (meta.get("namespace", ""), meta.get("name", ""))


def _rv(obj: Obj) -> str | None:
    return (obj.get("metadata") or {}).get("resourceVersion")


class ResourceWatch:
    """List+watch of one custom resource, in one namespace or (``namespace`` None) all."""

    def __init__(
        self,
        api: ApiServer,
        namespace: str | None,
        plural: str,
        sink: Sink,
        *,
        watch_timeout: int = 300,
        backoff: Backoff | None = None,
        on_listed: Callable[[], None] | None = None,
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.plural = plural
        self.sink = sink
        self.versions: dict[Key, str] = {}
        self.resource_version: str | None = None
        self.synced = False
        self.last_error: str | None = "not listed yet"
        self.lists = 0
        self._watch_timeout = watch_timeout
        self._backoff = backoff or Backoff()
        self._on_listed = on_listed

    @property
    def where(self) -> str:
        return self.namespace or "all namespaces"

    @property
    def path(self) -> str:
        return custom_path(GROUP, VERSION, self.plural, self.namespace)

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
                        "namespace": self.where,
                        "error": self.last_error,
                        "retry_in_s": round(delay, 2),
                    },
                )
                if isinstance(exc, ApiServerError) and exc.status == 410:
                    need_list = True
                await asyncio.sleep(delay)

    async def list_once(self) -> None:
        """List all objects (paginated) and hand the snapshot to the sink."""
        items: dict[Key, Obj] = {}
        token: str | None = None
        while True:
            try:
                page = await self.api.get(
                    self.path,
                    {"limit": LIST_PAGE_SIZE, "continue": token},
                    deadline=timeout_of(10, 60),
                )
                count_request("list", self.plural, 200)
            except Exception as exc:
                count_request("list", self.plural, code_of(exc))
                if not isinstance(exc, ApiServerError):
                    raise
                if exc.status == 410 and token:  # the continue token expired: start over
                    items, token = {}, None
                    continue
                raise
            for item in page.get("items") or []:
                items[_key(item)] = item
            meta = page.get("metadata") or {}
            token = meta.get("continue") or None
            if not token:
                list_rv = meta.get("resourceVersion")
                break
        self._replace(items, list_rv)
        self.lists += 1
        self.synced = True
        self.last_error = None
        if self._on_listed is not None:
            self._on_listed()

    def _replace(self, items: dict[Key, Obj], list_rv: str | None) -> None:
        for key, rv in list(self.versions.items()):
            # Keep what we wrote ourselves after the snapshot was taken (read-your-writes).
            if key not in items and not rv_newer(rv, list_rv):
                del self.versions[key]
                self._deliver("DELETED", {"metadata": {"namespace": key[0], "name": key[1]}})
        for key, obj in items.items():
            prev = self.versions.get(key)
            # Changed since we last saw it, unless what we hold is newer than the snapshot's
            # copy (our own write after the snapshot was taken: read-your-writes).
            if prev != _rv(obj) and (prev is None or rv_newer(_rv(obj), prev)):
                self.versions[key] = _rv(obj) or ""
                self._deliver("ADDED" if prev is None else "MODIFIED", obj)
        self.resource_version = list_rv

    def _deliver(self, kind: str, obj: Obj) -> None:
        try:
            self.sink(self.plural, kind, obj)
        except Exception:  # one object the sink cannot take must not stop the watch
            log.exception(
                "cannot apply a watched object",
                extra={"resource": self.plural, "object": "/".join(_key(obj))},
            )

    async def watch_once(self) -> None:
        """One watch request, from the last resourceVersion, until the server ends it."""
        timeout = self._watch_timeout
        params = {
            "watch": True,
            "allowWatchBookmarks": True,
            "resourceVersion": self.resource_version,
            "timeoutSeconds": timeout,
        }
        opened = False
        try:
            async with self.api.stream(
                self.path, params, timeout_of(10, timeout + 30, timeout + 60)
            ) as chunks:
                opened = True
                count_request("watch", self.plural, 200)
                self.synced = True
                self.last_error = None
                buffer = b""
                async for chunk in chunks:
                    *lines, buffer = (buffer + chunk).split(b"\n")
                    for handled, line in enumerate(lines, 1):
                        if line.strip():
                            self.handle_event(json.loads(line))
                        if handled % EVENTS_PER_TURN == 0:
                            await asyncio.sleep(0)  # requests get their turn in a burst
                if buffer.strip():
                    self.handle_event(json.loads(buffer))
        except Exception as exc:
            if not opened:
                count_request("watch", self.plural, code_of(exc))
            if isinstance(exc, ApiServerError) and exc.status == 410:
                raise Gone(exc.message) from None
            raise

    # events ----------------------------------------------------------------------------------
    def handle_event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        obj = event.get("object") or {}
        if kind == "ERROR":
            code = obj.get("code")
            if code == 410:
                raise Gone(obj.get("message"))
            raise ApiServerError(code or 500, obj.get("message") or "watch error")
        rv = _rv(obj)
        if kind == "BOOKMARK":
            if rv:
                self.resource_version = rv
            return
        key = _key(obj)
        if kind in ("ADDED", "MODIFIED"):
            self.versions[key] = rv or ""
        elif kind == "DELETED":
            self.versions.pop(key, None)
        else:
            log.debug("ignoring watch event", extra={"type": kind})
            return
        if rv:
            self.resource_version = rv
        self._deliver(str(kind), obj)

    def apply_local(self, obj: Obj) -> None:
        """Record an object we just wrote, unless the watch already delivered something newer."""
        key = _key(obj)
        prev = self.versions.get(key)
        if prev is None or rv_newer(_rv(obj), prev):
            self.versions[key] = _rv(obj) or ""
            self._deliver("ADDED" if prev is None else "MODIFIED", obj)


class WatchCache:
    """The watches of every resource in every watched namespace, feeding one catalog."""

    def __init__(
        self,
        api: ApiServer,
        namespaces: list[str],
        *,
        catalog: Catalog | None = None,
        watch_timeout: int = 300,
    ):
        self.namespaces = namespaces
        self.catalog = catalog or Catalog()
        scopes: list[str | None] = list(namespaces) if namespaces else [None]
        self.watches: dict[tuple[str, str | None], ResourceWatch] = {
            (plural, ns): ResourceWatch(
                api,
                ns,
                plural,
                self.catalog.apply,
                watch_timeout=watch_timeout,
                on_listed=self._listed,
            )
            for plural in PLURALS
            for ns in scopes
        }
        self._tasks: list[asyncio.Task[None]] = []

    def _listed(self) -> None:
        """Once every watch has listed (and after any relist): the catalog is the bulk of the
        process's memory and lives as long as it; keep the garbage collector off it."""
        if all(w.lists for w in self.watches.values()):
            freeze_long_lived("API catalog")

    def watch_for(self, plural: str, namespace: str) -> ResourceWatch:
        return self.watches.get((plural, namespace)) or self.watches[(plural, None)]

    def start(self) -> None:
        for (plural, ns), watch in self.watches.items():
            name = f"watch-{plural}-{ns or 'all'}"
            self._tasks.append(asyncio.create_task(watch.run(), name=name))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()

    def readiness(self) -> tuple[bool, str]:
        pending = [w for w in self.watches.values() if not w.synced]
        if not pending:
            return True, "synced"
        return False, "; ".join(
            f"{w.plural} in {w.where}: {w.last_error or 'not synced'}" for w in pending
        )
