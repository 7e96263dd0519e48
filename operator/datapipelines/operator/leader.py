"""Leader election with a coordination.k8s.io/v1 Lease, after client-go's leaderelection.

* A replica takes the Lease when it is free, or when its record has not changed for
  ``leaseDuration`` as observed on this replica's own monotonic clock (no clock comparisons
  across machines).
* The holder renews every ``retryPeriod``. Before each try it checks that its last successful
  renewal is less than ``renewDeadline`` old, and each try's deadline ends by then; otherwise it
  has lost. ``renewDeadline < leaseDuration``, so the holder stops before anyone else may take
  over.
* :meth:`LeaderElector.guard` is called before every write of the operator: it refuses once
  the renewal is overdue, and cuts the write's deadline so that no request is still in flight
  when another replica may hold the Lease. Losing the Lease sets ``lost`` at once; the operator
  cancels all its work and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Gauge

from .kube import Kube, NotLeading

log = logging.getLogger(__name__)

LEADER = Gauge(
    "datapipelines_operator_leader",
    "1 while this replica holds the Lease (one per shard), else 0.",
    ["lease"],
)


def _clock() -> float:
    """This replica's monotonic clock (a function of its own so tests can move it)."""
    return time.monotonic()


def _micro_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaseLost(Exception):
    """This replica no longer holds the Lease."""


class LeaderElector:
    def __init__(
        self,
        kube: Kube,
        namespace: str,
        name: str,
        identity: str,
        *,
        lease_duration: float = 15,
        renew_deadline: float = 10,
        retry_period: float = 2,
    ) -> None:
        if not retry_period < renew_deadline < lease_duration:
            raise ValueError("need retryPeriod < renewDeadline < leaseDuration")
        self.kube = kube
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self._observed: tuple[Any, ...] | None = None
        self._observed_at = 0.0
        self._record: dict[str, Any] | None = None
        self._renewed_at: float | None = None  # when the last successful renewal was SENT
        self.lost = asyncio.Event()
        self.on_lost: list[Callable[[], None]] = []

    # ------------------------------------------------------------------ the write guard

    def remaining(self) -> float:
        """Seconds this replica may still act for (≤ 0: not any more)."""
        if self._renewed_at is None or self.lost.is_set():
            return 0.0
        return self.renew_deadline - (_clock() - self._renewed_at)

    def guard(self) -> float:
        """Before a write: NotLeading when the Lease is (or may be) lost, else the seconds left."""
        left = self.remaining()
        if left <= 0.1:
            self._lose("the Lease was not renewed within renewDeadline")
            raise NotLeading(f"{self.identity} no longer holds Lease {self.name}")
        return left

    def _lose(self, why: str) -> None:
        if self.lost.is_set():
            return
        log.error("leader election: lost Lease %s: %s", self.name, why)
        self.lost.set()
        LEADER.labels(self.name).set(0)
        for callback in self.on_lost:
            with contextlib.suppress(Exception):
                callback()

    # ------------------------------------------------------------------ the Lease object

    def _body(self, old: dict[str, Any] | None, holder: str | None = None) -> dict[str, Any]:
        spec = dict((old or {}).get("spec") or {})
        now = _micro_now()
        holder = self.identity if holder is None else holder
        if spec.get("holderIdentity") != holder:
            spec["acquireTime"] = now
            spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + (1 if old else 0)
        spec.update(
            holderIdentity=holder,
            leaseDurationSeconds=round(self.lease_duration),
            renewTime=now,
        )
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
        """One attempt (each call with a deadline of retryPeriod)."""
        timeout = self.retry_period
        sent = _clock()
        lease = await self.kube.get_lease(self.namespace, self.name, timeout)
        if lease is None:
            self._record = await self.kube.create_lease(self.namespace, self._body(None), timeout)
        else:
            spec = lease.get("spec") or {}
            key = (spec.get("holderIdentity"), spec.get("renewTime"), spec.get("acquireTime"))
            if key != self._observed:
                self._observed, self._observed_at = key, _clock()
            holder = spec.get("holderIdentity")
            duration = float(spec.get("leaseDurationSeconds") or self.lease_duration)
            expired = _clock() - self._observed_at > duration
            if holder and holder != self.identity and not expired:
                return False
            sent = _clock()
            self._record = await self.kube.replace_lease(self.namespace, self._body(lease), timeout)
        if self._record is None:
            return False
        self._renewed_at = sent
        return True

    async def acquire(self, stop: asyncio.Event) -> bool:
        """Wait until this replica holds the Lease (True) or ``stop`` is set (False)."""
        logged = False
        while not stop.is_set():
            try:
                if await self.try_acquire():
                    log.info("leader election: %s holds Lease %s", self.identity, self.name)
                    LEADER.labels(self.name).set(1)
                    return True
            except Exception as exc:  # apiserver hiccup or a deadline: try again
                log.warning("leader election: %s", str(exc) or type(exc).__name__)
            LEADER.labels(self.name).set(0)
            if not logged:
                log.info("leader election: standing by, another replica holds %s", self.name)
                logged = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.retry_period)
        return False

    async def _renew_once(self) -> None:
        left = self.remaining()
        if left <= 0:
            raise LeaseLost("could not renew the Lease within renewDeadline")
        timeout = min(self.retry_period, left)
        sent = _clock()
        record = None
        if self._record is not None:
            record = await self.kube.replace_lease(
                self.namespace, self._body(self._record), timeout
            )
        if record is None:  # someone changed it: read it, and renew only if still ours
            lease = await self.kube.get_lease(self.namespace, self.name, timeout)
            if lease is None or (lease.get("spec") or {}).get("holderIdentity") != self.identity:
                raise LeaseLost(f"Lease {self.name} is held by someone else")
            left = self.remaining()
            if left <= 0:
                raise LeaseLost("could not renew the Lease within renewDeadline")
            record = await self.kube.replace_lease(
                self.namespace, self._body(lease), min(self.retry_period, left)
            )
            if record is None:
                raise LeaseLost(f"Lease {self.name} changed under us")
        self._record = record
        self._renewed_at = sent

    async def hold(self, stop: asyncio.Event) -> None:
        """Renew until ``stop``; raise LeaseLost (after calling ``on_lost``) when it cannot."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.retry_period)
                break
            try:
                await self._renew_once()
            except LeaseLost as exc:
                self._lose(str(exc))
                raise
            except Exception as exc:  # a failed try; the deadline check above decides
                log.warning("leader election: renewal failed: %s", str(exc) or type(exc).__name__)
                if self.remaining() <= 0:
                    self._lose("could not renew the Lease within renewDeadline")
                    raise LeaseLost("could not renew the Lease within renewDeadline") from exc

    async def release(self) -> None:
        """Give the Lease up at shutdown so a standby takes over at once."""
        if self._record is None or self.lost.is_set():
            return
        try:
            body = self._body(self._record, holder="")
            body["spec"]["holderIdentity"] = None
            body["spec"]["leaseDurationSeconds"] = 1
            await self.kube.replace_lease(self.namespace, body, self.retry_period)
        except Exception as exc:  # pragma: no cover - best effort
            log.debug("leader election: release failed: %s", exc)
        self._renewed_at = None
        LEADER.labels(self.name).set(0)


__all__ = ["LeaderElector", "LeaseLost", "NotLeading"]
