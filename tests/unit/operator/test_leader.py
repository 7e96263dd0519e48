"""LeaderElector against a fake of the three Lease calls it makes (optimistic concurrency like
the apiserver) and a fake monotonic clock: acquire, stand by, renew, lose, release."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest

from datapipelines.operator import leader
from datapipelines.operator.kube import NotLeading
from datapipelines.operator.leader import LeaderElector, LeaseLost


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeLeases:
    """GET / POST / PUT of one Lease; a PUT with a stale resourceVersion answers None (409).
    ``fail`` makes every call raise (the apiserver is unreachable); ``latency`` moves the
    clock by that much per call."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.obj: dict[str, Any] | None = None
        self.version = 0
        self.fail = False
        self.latency = 0.0
        self.deadlines: list[float] = []
        self.wanted_calls = 0
        self.called_enough = asyncio.Event()

    def _call(self, deadline: float) -> None:
        self.deadlines.append(deadline)
        if len(self.deadlines) >= self.wanted_calls:
            self.called_enough.set()
        self.clock.now += self.latency
        if self.fail:
            raise TimeoutError("apiserver unreachable")

    async def get_lease(self, ns: str, name: str, deadline: float) -> dict[str, Any] | None:
        self._call(deadline)
        return copy.deepcopy(self.obj)

    async def create_lease(
        self, ns: str, body: dict[str, Any], deadline: float
    ) -> dict[str, Any] | None:
        self._call(deadline)
        if self.obj is not None:
            return None
        return self._store(body)

    async def replace_lease(
        self, ns: str, body: dict[str, Any], deadline: float
    ) -> dict[str, Any] | None:
        self._call(deadline)
        if self.obj is None or body["metadata"].get("resourceVersion") != str(self.version):
            return None
        return self._store(body)

    def _store(self, body: dict[str, Any]) -> dict[str, Any]:
        self.version += 1
        self.obj = copy.deepcopy(body)
        self.obj["metadata"]["resourceVersion"] = str(self.version)
        return copy.deepcopy(self.obj)

    @property
    def holder(self) -> str | None:
        return None if self.obj is None else self.obj["spec"].get("holderIdentity")


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(leader, "_clock", fake)
    return fake


@pytest.fixture
def leases(clock: Clock) -> FakeLeases:
    return FakeLeases(clock)


def elector(leases: FakeLeases, identity: str, **timing: float) -> LeaderElector:
    timing = {"lease_duration": 15, "renew_deadline": 10, "retry_period": 2, **timing}
    return LeaderElector(leases, "ns", "lease", identity, **timing)  # type: ignore[arg-type]


async def test_acquires_a_free_lease(leases: FakeLeases) -> None:
    a = elector(leases, "a")
    assert a.remaining() == 0
    assert await a.try_acquire()
    assert leases.holder == "a"
    spec = leases.obj["spec"]  # type: ignore[index]
    assert spec["leaseDurationSeconds"] == 15 and spec["leaseTransitions"] == 0
    assert spec["acquireTime"] and spec["renewTime"]
    assert a.remaining() == pytest.approx(10)
    assert a.guard() == pytest.approx(10)
    assert all(d == 2 for d in leases.deadlines)  # each call within retryPeriod


async def test_stands_by_while_held_and_takes_over_once_expired(
    leases: FakeLeases, clock: Clock
) -> None:
    a, b = elector(leases, "a"), elector(leases, "b")
    assert await a.try_acquire()
    assert not await b.try_acquire()
    clock.now += 10
    assert not await b.try_acquire()  # b has seen the same record for 10 s only
    assert await a.try_acquire()  # a renews: the record changes
    clock.now += 10
    assert not await b.try_acquire()  # a changed record restarts b's observation
    with pytest.raises(NotLeading):
        b.guard()
    clock.now += 16
    assert await b.try_acquire()  # unchanged for longer than leaseDuration: take over
    assert leases.holder == "b"
    assert leases.obj["spec"]["leaseTransitions"] == 1  # type: ignore[index]


async def test_acquire_waits_until_stopped(leases: FakeLeases) -> None:
    a = elector(leases, "a", retry_period=0.01, renew_deadline=0.05, lease_duration=60)
    b = elector(leases, "b", retry_period=0.01, renew_deadline=0.05, lease_duration=60)
    assert await a.try_acquire()
    leases.wanted_calls = len(leases.deadlines) + 2  # b tried twice
    leases.called_enough.clear()
    stop = asyncio.Event()
    waiting = asyncio.create_task(b.acquire(stop))
    await asyncio.wait_for(leases.called_enough.wait(), 2)
    assert not waiting.done() and leases.holder == "a"
    stop.set()
    assert await asyncio.wait_for(waiting, 2) is False


async def test_renewal_keeps_the_write_guard_open(leases: FakeLeases, clock: Clock) -> None:
    a = elector(leases, "a")
    assert await a.try_acquire()
    for _ in range(5):
        clock.now += 2
        leases.latency = 0.5
        await a._renew_once()
        assert a.remaining() > 9  # the renewal was sent 0.5 s ago
        assert a.guard() > 0
    assert leases.holder == "a" and not a.lost.is_set()


async def test_failing_renewals_past_renew_deadline_lose_the_lease(
    leases: FakeLeases, clock: Clock
) -> None:
    a = elector(leases, "a", retry_period=0.01, renew_deadline=10, lease_duration=15)
    lost: list[str] = []
    a.on_lost.append(lambda: lost.append("callback"))
    assert await a.try_acquire()
    leases.fail, leases.latency = True, 3.0  # each failed try takes 3 s of the deadline
    with pytest.raises(LeaseLost):
        await asyncio.wait_for(a.hold(asyncio.Event()), 2)
    assert a.lost.is_set() and lost == ["callback"]
    assert a.remaining() == 0
    with pytest.raises(NotLeading):
        a.guard()
    assert lost == ["callback"]  # called once
    assert all(d <= 10 for d in leases.deadlines)


async def test_guard_refuses_once_the_renewal_is_overdue(leases: FakeLeases, clock: Clock) -> None:
    a = elector(leases, "a")
    called: list[bool] = []
    a.on_lost.append(lambda: called.append(True))
    assert await a.try_acquire()
    clock.now += 9.5
    assert a.guard() == pytest.approx(0.5)
    clock.now += 0.45
    with pytest.raises(NotLeading):
        a.guard()
    assert a.lost.is_set() and called == [True]


async def test_hold_raises_when_someone_else_took_it(leases: FakeLeases) -> None:
    a = elector(leases, "a", retry_period=0.01, renew_deadline=0.5, lease_duration=1)
    assert await a.try_acquire()
    leases.obj["spec"]["holderIdentity"] = "intruder"  # type: ignore[index]
    leases.version += 1
    with pytest.raises(LeaseLost, match="someone else"):
        await asyncio.wait_for(a.hold(asyncio.Event()), 2)
    assert a.lost.is_set()


async def test_hold_returns_when_stopped(leases: FakeLeases) -> None:
    a = elector(leases, "a", retry_period=0.01, renew_deadline=0.5, lease_duration=1)
    assert await a.try_acquire()
    stop = asyncio.Event()
    stop.set()
    await asyncio.wait_for(a.hold(stop), 2)
    assert not a.lost.is_set()


async def test_release_lets_a_standby_in_at_once(leases: FakeLeases) -> None:
    a, b = elector(leases, "a"), elector(leases, "b")
    assert await a.try_acquire()
    await a.release()
    assert leases.holder is None
    assert leases.obj["spec"]["leaseDurationSeconds"] == 1  # type: ignore[index]
    assert a.remaining() == 0
    assert await b.try_acquire()
    assert leases.holder == "b"


@pytest.mark.parametrize(
    ("duration", "deadline", "retry"),
    [(15, 10, 10), (15, 15, 2), (10, 15, 2), (15, 10, 12), (5, 5, 5)],
)
def test_the_elector_refuses_timings_that_could_overlap(
    leases: FakeLeases, duration: float, deadline: float, retry: float
) -> None:
    with pytest.raises(ValueError, match="retryPeriod < renewDeadline < leaseDuration"):
        elector(leases, "a", lease_duration=duration, renew_deadline=deadline, retry_period=retry)


async def test_a_renewal_that_times_out_is_logged_by_its_type(
    leases: FakeLeases, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    a = elector(leases, "a", retry_period=0.01, renew_deadline=10, lease_duration=15)
    assert await a.try_acquire()

    async def timing_out(ns: str, body: dict[str, Any], deadline: float) -> None:
        clock.now += 6
        raise TimeoutError()  # what a request deadline raises: no message of its own

    leases.replace_lease = timing_out  # type: ignore[method-assign]
    with caplog.at_level("WARNING"), pytest.raises(LeaseLost):
        await asyncio.wait_for(a.hold(asyncio.Event()), 2)
    assert "leader election: renewal failed: TimeoutError" in caplog.text
