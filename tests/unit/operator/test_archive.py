"""Archive: an outage fails inserts fast, with a back-off, until the archive answers again."""

from __future__ import annotations

from typing import Any

import pytest

from datapipelines.operator import archive
from datapipelines.operator.archive import Archive, next_backoff


def test_backoff_doubles_up_to_the_maximum() -> None:
    waits = [next_backoff(None)]
    for _ in range(8):
        waits.append(next_backoff(waits[-1]))
    assert waits[:4] == [1, 2, 4, 8]
    assert max(waits) == archive.BACKOFF_MAX_SECONDS == waits[-1]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class FakeConnection:
    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows

    async def __aenter__(self) -> FakeConnection:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def execute(self, sql: str, params: Any = None) -> None:
        if params is not None:
            self.rows.append(params)


def finished_run(name: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}"},
        "spec": {"connectionName": "demo", "trigger": "api"},
        "status": {
            "phase": "Failed",
            "completionTime": "2026-01-01T00:00:00Z",
            "result": {"success": False, "error": "boom"},
        },
    }


async def test_an_outage_is_tried_once_per_backoff_then_recovers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock()
    monkeypatch.setattr(archive, "_clock", clock)
    store = Archive("postgresql://nowhere/db")
    rows: list[dict[str, Any]] = []
    attempts: list[float] = []
    down = True

    async def connect() -> FakeConnection:
        attempts.append(clock.now)
        if down:
            raise OSError("connection refused")
        return FakeConnection(rows)

    monkeypatch.setattr(store, "_connect", connect)
    assert await store.insert(finished_run("a")) is False
    assert await store.insert(finished_run("b")) is False  # within the back-off: not tried
    assert attempts == [100.0] and not store.available
    clock.now += 1.0
    assert await store.insert(finished_run("b")) is False  # tried again, failing: 2 s now
    clock.now += 1.5
    assert await store.insert(finished_run("b")) is False
    assert attempts == [100.0, 101.0]
    down = False
    clock.now += 0.5
    assert await store.insert(finished_run("b")) is True
    assert await store.insert(finished_run("a")) is True  # no back-off once it answered
    assert [r["run_name"] for r in rows] == ["b", "a"] and store.available
