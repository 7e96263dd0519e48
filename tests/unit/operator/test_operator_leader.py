"""LeaderElector against an in-memory Lease store: one holder, takeover after expiry, release."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest

from datapipelines.operator import leader
from datapipelines.operator.leader import LeaderElector, LeaseLost

pytestmark = pytest.mark.asyncio(loop_scope="function")


class FakeLeases:
    """Optimistic concurrency like the apiserver: PUT with a stale resourceVersion → None (409)."""

    def __init__(self) -> None:
        self.obj: dict[str, Any] | None = None
        self.version = 0

    async def get_lease(self, ns: str, name: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.obj)

    async def create_lease(self, ns: str, body: dict[str, Any]) -> dict[str, Any] | None:
        if self.obj is not None:
            return None
        return self._store(body)

    async def replace_lease(self, ns: str, body: dict[str, Any]) -> dict[str, Any] | None:
        if self.obj is None or body["metadata"].get("resourceVersion") != str(self.version):
            return None
        return self._store(body)

    def _store(self, body: dict[str, Any]) -> dict[str, Any]:
        self.version += 1
        self.obj = copy.deepcopy(body)
        self.obj["metadata"]["resourceVersion"] = str(self.version)
        return copy.deepcopy(self.obj)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [1000.0]
    monkeypatch.setattr(leader, "_clock", lambda: now[0])
    return now


async def test_only_one_holder_until_expiry(clock: list[float]) -> None:
    store = FakeLeases()
    a = LeaderElector(store, "ns", "lease", "a", 15)  # type: ignore[arg-type]
    b = LeaderElector(store, "ns", "lease", "b", 15)  # type: ignore[arg-type]
    assert await a.try_acquire()
    assert not await b.try_acquire()
    clock[0] += 10
    assert not await b.try_acquire()  # b has seen the same record for only 10 s
    assert await a.try_acquire()  # a renews: the record changes
    clock[0] += 10
    assert not await b.try_acquire()  # changed record: b's observation restarted
    clock[0] += 16
    assert await b.try_acquire()  # unchanged for longer than the duration: take over
    assert store.obj["spec"]["holderIdentity"] == "b"
    assert store.obj["spec"]["leaseTransitions"] == 1


async def test_release_lets_the_standby_in_at_once(clock: list[float]) -> None:
    store = FakeLeases()
    a = LeaderElector(store, "ns", "lease", "a", 15)  # type: ignore[arg-type]
    b = LeaderElector(store, "ns", "lease", "b", 15)  # type: ignore[arg-type]
    assert await a.try_acquire()
    await a.release()
    assert await b.try_acquire()


async def test_hold_raises_when_someone_else_holds(clock: list[float]) -> None:
    store = FakeLeases()
    a = LeaderElector(store, "ns", "lease", "a", 5)  # type: ignore[arg-type]
    assert await a.try_acquire()
    store.obj["spec"]["holderIdentity"] = "intruder"
    with pytest.raises(LeaseLost):
        await asyncio.wait_for(a.hold(asyncio.Event()), timeout=10)
