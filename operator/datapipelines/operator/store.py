"""The operator's view of the cluster: kopf's indexes plus what the operator itself just wrote.

A reconcile reads everything here and calls the apiserver only to write. kopf fills the
indexes from its watches (``registration.py``); the same key functions below build an
in-memory store for unit tests (:meth:`Store.of`). After a write, the returned object is kept
in an overlay until the watch delivers that version or a newer one (read-your-writes: a
reconcile right after a write never acts on the state before it).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from datapipelines.resources.batch import PipelineBatch
from datapipelines.resources.run import PipelineRun

from .views import ConnectionView, JobView, PodView, batch_label

Key = tuple[str, ...]
V = TypeVar("V")
V_co = TypeVar("V_co", covariant=True)


class IndexLike(Protocol[V_co]):
    """What kopf's ``Index`` offers (and a plain ``dict[key, list]`` too)."""

    def __getitem__(self, key: Any) -> Iterable[V_co]: ...

    def __contains__(self, key: object) -> bool: ...

    def __iter__(self) -> Iterator[Any]: ...


# --------------------------------------------------------------------------- index keys


def connection_keys(view: ConnectionView) -> dict[Key, ConnectionView]:
    keys: dict[Key, ConnectionView] = {("conn", view.namespace, view.name): view}
    dest = view.destination
    if dest is not None:
        keys[("dest", dest.key)] = view
    return keys


def run_keys(run: PipelineRun) -> dict[Key, PipelineRun]:
    ns = run.namespace
    keys: dict[Key, PipelineRun] = {
        ("conn", ns, run.spec.connection_name): run,
        ("name", ns, run.name): run,
    }
    batch = batch_label(run.metadata)
    if batch:
        keys[("batch", ns, batch)] = run
    return keys


def job_keys(job: JobView) -> dict[Key, JobView]:
    return {("run", job.namespace, job.name): job}


def pod_keys(pod: PodView) -> dict[Key, PodView]:
    return {("run", pod.namespace, pod.run): pod} if pod.run else {}


def batch_keys(batch: PipelineBatch) -> dict[Key, PipelineBatch]:
    return {("batch", batch.metadata.namespace, batch.metadata.name): batch}


# --------------------------------------------------------------------------- the store


def _rv(obj: Any) -> int:
    meta = getattr(obj, "meta", None) or getattr(obj, "metadata", None)
    if meta is not None:
        return int(meta.rv())
    try:
        return int(obj.resource_version)
    except (AttributeError, ValueError):
        return 0


#: An overlay entry the index never confirms is dropped after this long (the object was
#: deleted before the watch showed our write); a tombstone lives as long.
OVERLAY_TTL_SECONDS = 60.0


@dataclass
class _Overlay:
    """Objects the operator wrote, by (kind, namespace, name), and tombstones by uid, each
    with the monotonic time it was written. Both dicts are kept in the order of that time (a
    rewrite moves its entry to the end), so expiry pops from the front; `created` names the
    created objects per (kind, namespace), the only ones a read must find outside the index.
    Every read costs what it reads, not what the overlay holds: a bulk change (10,000 first
    statuses) does not make each reconcile scan every write in flight."""

    objects: dict[tuple[str, str, str], tuple[float, bool, Any]] = field(default_factory=dict)
    created: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    deleted_uids: dict[str, float] = field(default_factory=dict)

    def put(self, key: tuple[str, str, str], at: float, created: bool, obj: Any) -> None:
        self.objects.pop(key, None)
        self.objects[key] = (at, created, obj)
        if created:
            self.created.setdefault(key[:2], set()).add(key[2])

    def drop(self, key: tuple[str, str, str]) -> None:
        self.objects.pop(key, None)
        names = self.created.get(key[:2])
        if names is not None:
            names.discard(key[2])
            if not names:
                del self.created[key[:2]]

    def tombstone(self, uid: str, at: float) -> None:
        self.deleted_uids.pop(uid, None)
        self.deleted_uids[uid] = at

    def expire(self, cutoff: float) -> None:
        dead = self.deleted_uids
        while dead and next(iter(dead.values())) < cutoff:
            del dead[next(iter(dead))]
        while self.objects:
            key, (at, _, _) = next(iter(self.objects.items()))
            if at >= cutoff:
                break
            self.drop(key)


#: Pods whose start problem is remembered (each is read once, when its run's start deadline
#: passes; the run fails then, so an entry is needed for one reconcile).
MAX_POD_WARNINGS = 1000


class Store:
    """Reads of connections, runs, Jobs, pods and batches (all in memory)."""

    def __init__(
        self,
        connections: IndexLike[ConnectionView],
        runs: IndexLike[PipelineRun],
        jobs: IndexLike[JobView],
        pods: IndexLike[PodView],
        batches: IndexLike[PipelineBatch],
    ) -> None:
        self._connections = connections
        self._runs = runs
        self._jobs = jobs
        self._pods = pods
        self._batches = batches
        self._overlay = _Overlay()
        #: pod uid → its newest Warning event ("Reason: message", "" for none), read once for
        #: a pod that did not start in time (the kubelet says why only in events)
        self._pod_warnings: dict[str, str] = {}

    @classmethod
    def of(
        cls,
        connections: Iterable[ConnectionView] = (),
        runs: Iterable[PipelineRun] = (),
        jobs: Iterable[JobView] = (),
        pods: Iterable[PodView] = (),
        batches: Iterable[PipelineBatch] = (),
    ) -> Store:
        """A store over plain objects, indexed as kopf would (unit tests)."""

        def index(objs: Iterable[Any], keys: Any) -> dict[Key, list[Any]]:
            out: dict[Key, list[Any]] = {}
            for obj in objs:
                for key, value in keys(obj).items():
                    out.setdefault(key, []).append(value)
            return out

        return cls(
            index(connections, connection_keys),
            index(runs, run_keys),
            index(jobs, job_keys),
            index(pods, pod_keys),
            index(batches, batch_keys),
        )

    # ------------------------------------------------------------------ overlay

    def remember(
        self, kind: str, obj: Any, namespace: str, name: str, *, created: bool = False
    ) -> None:
        """Keep an object this operator just wrote until the watch catches up. An update of an
        object the index no longer holds is dropped at once (it was deleted meanwhile); a
        created object waits for the watch up to OVERLAY_TTL_SECONDS."""
        self._overlay.put((kind, namespace, name), time.monotonic(), created, obj)

    def pod_warning(self, uid: str) -> str | None:
        """The pod's newest Warning event as read, "" when it had none, None if never read."""
        return self._pod_warnings.get(uid)

    def remember_pod_warning(self, uid: str, warning: str) -> None:
        self._pod_warnings[uid] = warning
        while len(self._pod_warnings) > MAX_POD_WARNINGS:  # oldest first out: bounded
            del self._pod_warnings[next(iter(self._pod_warnings))]

    def forget(self, uid: str) -> None:
        """An object this operator just deleted (or found gone): hide it until the watch drops
        it."""
        if uid:
            self._overlay.tombstone(uid, time.monotonic())

    def _merge(self, kind: str, indexed: Iterable[V], match: Mapping[str, str]) -> list[V]:
        """Indexed objects, each replaced by a newer overlay copy, plus overlay objects of
        ``match`` the index does not know yet; tombstoned ones left out."""
        overlay = self._overlay
        cutoff = time.monotonic() - OVERLAY_TTL_SECONDS
        overlay.expire(cutoff)
        by_name: dict[str, V] = {}
        for obj in indexed:
            by_name[_name(obj)] = obj
        ns = match.get("namespace", "")
        candidates = set(by_name) | overlay.created.get((kind, ns), set())
        for o_name in candidates:
            key = (kind, ns, o_name)
            entry = overlay.objects.get(key)
            if entry is None:
                continue
            at, created, obj = entry
            current = by_name.get(o_name)
            if current is not None and _rv(current) >= _rv(obj):
                overlay.drop(key)  # the watch caught up
                continue
            if current is None and (not created or at < cutoff) and _matches(obj, match):
                overlay.drop(key)  # deleted meanwhile (or never confirmed)
                continue
            if current is not None or _matches(obj, match):
                by_name[o_name] = obj
        dead = self._overlay.deleted_uids
        return [o for o in by_name.values() if _uid(o) not in dead]

    def _values(self, index: IndexLike[V], key: Key) -> list[V]:
        return list(index[key]) if key in index else []

    # ------------------------------------------------------------------ reads

    def connection(self, namespace: str, name: str) -> ConnectionView | None:
        found = self._merge(
            "conn",
            self._values(self._connections, ("conn", namespace, name)),
            {"namespace": namespace, "name": name},
        )
        return found[0] if found else None

    def connection_keys(self) -> list[tuple[str, str]]:
        return [(k[1], k[2]) for k in self._connections if k[0] == "conn"]

    def connections_sharing(self, destination_key: str) -> list[ConnectionView]:
        return self._values(self._connections, ("dest", destination_key))

    def runs_of(self, namespace: str, connection: str) -> list[PipelineRun]:
        return self._merge(
            "run",
            self._values(self._runs, ("conn", namespace, connection)),
            {"namespace": namespace, "connection": connection},
        )

    def runs_of_batch(self, namespace: str, batch: str) -> list[PipelineRun]:
        return self._merge(
            "run",
            self._values(self._runs, ("batch", namespace, batch)),
            {"namespace": namespace, "batch": batch},
        )

    def run(self, namespace: str, name: str) -> PipelineRun | None:
        found = self._merge(
            "run",
            self._values(self._runs, ("name", namespace, name)),
            {"namespace": namespace, "name": name},
        )
        return found[0] if found else None

    def run_connections(self) -> list[tuple[str, str]]:
        """(namespace, connection) of every run's connection (existing or not)."""
        return [(k[1], k[2]) for k in self._runs if k[0] == "conn"]

    def jobs_of(self, namespace: str, run: str) -> list[JobView]:
        return self._merge(
            "job",
            self._values(self._jobs, ("run", namespace, run)),
            {"namespace": namespace, "name": run},
        )

    def pods_of(self, namespace: str, run: str) -> list[PodView]:
        pods = self._values(self._pods, ("run", namespace, run))
        return sorted(pods, key=lambda p: (p.created is None, p.created, p.name))

    def batch(self, namespace: str, name: str) -> PipelineBatch | None:
        found = self._merge(
            "batch",
            self._values(self._batches, ("batch", namespace, name)),
            {"namespace": namespace, "name": name},
        )
        return found[0] if found else None

    def batch_keys(self) -> list[tuple[str, str]]:
        return [(k[1], k[2]) for k in self._batches]


def _name(obj: Any) -> str:
    meta = getattr(obj, "meta", None) or getattr(obj, "metadata", None)
    return str(meta.name if meta is not None else obj.name)


def _uid(obj: Any) -> str:
    meta = getattr(obj, "meta", None) or getattr(obj, "metadata", None)
    return str(meta.uid if meta is not None else getattr(obj, "uid", ""))


def _matches(obj: Any, match: Mapping[str, str]) -> bool:
    if "name" in match and _name(obj) != match["name"]:
        return False
    if "connection" in match:
        spec = getattr(obj, "spec", None)
        if getattr(spec, "connection_name", None) != match["connection"]:
            return False
    if "batch" in match:
        meta = getattr(obj, "metadata", None)
        if meta is None or batch_label(meta) != match["batch"]:
            return False
    return True
