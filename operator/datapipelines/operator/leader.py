"""Leader election with a coordination.k8s.io/v1 Lease: only the holder runs kopf.

Like client-go's leaderelection: a replica takes the Lease when it is free or when its record
has not changed for ``leaseDurationSeconds`` as observed on the replica's own clock (no clock
comparisons across machines); the holder renews it every third of the duration and stops
acting if it cannot renew before the duration has passed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime
from typing import Any

from .kube import Kube

log = logging.getLogger(__name__)


def _clock() -> float:
    """This replica's monotonic clock (a function of its own so tests can move it)."""
    return time.monotonic()


def _micro_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaseLost(Exception):
    """This replica no longer holds the Lease."""


class LeaderElector:
    def __init__(self, kube: Kube, namespace: str, name: str, identity: str, duration: int):
        self.kube = kube
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.duration = duration
        self._observed: tuple[Any, ...] | None = None
        self._observed_at = 0.0
        self._record: dict[str, Any] | None = None

    def _body(self, old: dict[str, Any] | None) -> dict[str, Any]:
        spec = dict((old or {}).get("spec") or {})
        now = _micro_now()
        if spec.get("holderIdentity") != self.identity:
            spec["acquireTime"] = now
            spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + (1 if old else 0)
        spec.update(holderIdentity=self.identity, leaseDurationSeconds=self.duration, renewTime=now)
        meta: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        if old:
            meta["resourceVersion"] = old["metadata"]["resourceVersion"]
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": meta,
            "spec": spec,
        }

    async def try_acquire(self) -> bool:
        lease = await self.kube.get_lease(self.namespace, self.name)
        if lease is None:
            self._record = await self.kube.create_lease(self.namespace, self._body(None))
            return self._record is not None
        spec = lease.get("spec") or {}
        key = (spec.get("holderIdentity"), spec.get("renewTime"), spec.get("acquireTime"))
        if key != self._observed:
            self._observed, self._observed_at = key, _clock()
        holder = spec.get("holderIdentity")
        duration = int(spec.get("leaseDurationSeconds") or self.duration)
        expired = _clock() - self._observed_at > duration
        if holder and holder != self.identity and not expired:
            return False
        self._record = await self.kube.replace_lease(self.namespace, self._body(lease))
        return self._record is not None

    async def acquire(self, stop: asyncio.Event) -> bool:
        """Wait until this replica holds the Lease (True) or ``stop`` is set (False)."""
        logged = False
        while not stop.is_set():
            try:
                if await self.try_acquire():
                    log.info("leader election: %s holds Lease %s", self.identity, self.name)
                    return True
            except Exception as exc:  # apiserver hiccup: try again
                log.warning("leader election: %s", exc)
            if not logged:
                log.info("leader election: standing by, another replica holds %s", self.name)
                logged = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=max(1.0, self.duration / 3))
        return False

    async def hold(self, stop: asyncio.Event) -> None:
        """Renew until ``stop``; raise LeaseLost when renewal is impossible in time."""
        last_ok = _clock()
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=max(1.0, self.duration / 3))
                break
            except TimeoutError:
                pass
            try:
                lease = await self.kube.get_lease(self.namespace, self.name)
                if (
                    lease is None
                    or (lease.get("spec") or {}).get("holderIdentity") != self.identity
                ):
                    raise LeaseLost(f"Lease {self.name} is held by someone else")
                record = await self.kube.replace_lease(self.namespace, self._body(lease))
                if record is None:
                    raise LeaseLost(f"Lease {self.name} changed under us")
                last_ok = _clock()
            except LeaseLost:
                raise
            except Exception as exc:
                log.warning("leader election: renewal failed: %s", exc)
                if _clock() - last_ok > self.duration * 2 / 3:
                    raise LeaseLost("could not renew the Lease in time") from exc

    async def release(self) -> None:
        """Give the Lease up at shutdown so a standby takes over at once."""
        try:
            lease = await self.kube.get_lease(self.namespace, self.name)
            if lease and (lease.get("spec") or {}).get("holderIdentity") == self.identity:
                body = self._body(lease)
                body["spec"]["holderIdentity"] = None
                body["spec"]["leaseDurationSeconds"] = 1
                await self.kube.replace_lease(self.namespace, body)
        except Exception as exc:  # pragma: no cover - best effort
            log.debug("leader election: release failed: %s", exc)
