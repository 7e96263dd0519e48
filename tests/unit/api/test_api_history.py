"""GET /history: finished runs newest first, limit bounds, archive merge."""

from __future__ import annotations

import httpx
import pytest

from datapipelines.api.errors import ArchiveUnavailable
from datapipelines.api.main import create_app
from datapipelines.api.mapping import history_entry_of_row
from datapipelines.api.models import HistoryEntryOut
from datapipelines.api.settings import Settings
from tests.unit.api.fakekube import FakeStore

ENTRY_FIELDS = {
    "run_id",
    "connection",
    "kind",
    "trigger",
    "status",
    "success",
    "started_at",
    "finished_at",
    "duration_ms",
    "rows_inserted",
    "records_reported",
    "attempts",
    "error",
}


def _add_finished(fake: FakeStore, n: int) -> None:
    for i in range(n):
        fake.add_run(
            f"alpha-{i:02d}",
            "alpha",
            "Succeeded" if i % 2 else "Failed",
            startTime=f"2026-11-30T07:{i:02d}:00Z",
            completionTime=f"2026-11-30T07:{i:02d}:30Z",
            result={
                "success": bool(i % 2),
                "durationMs": 30000,
                "rowsInserted": i,
                "error": None if i % 2 else "x",
            },
        )


async def test_history_default_limit_newest_first(
    client: httpx.AsyncClient, fake: FakeStore
) -> None:
    _add_finished(fake, 15)
    fake.add_run("alpha-running", "alpha", "Running", startTime="2026-11-30T09:00:00Z")
    resp = await client.get("/history")
    assert resp.status_code == 200
    body = resp.json()
    assert len(body) == 10
    assert [e["run_id"] for e in body] == [f"alpha-{i:02d}" for i in range(14, 4, -1)]
    assert set(body[0]) >= ENTRY_FIELDS
    assert body[0]["status"] == "failed" and body[0]["success"] is False
    assert body[1]["status"] == "succeeded" and body[1]["rows_inserted"] == 13
    assert body[0]["kind"] == "single" and body[0]["trigger"] == "api"
    assert resp.headers["X-DataPipelines-History-Archive"] == "not-configured"


async def test_history_limit(client: httpx.AsyncClient, fake: FakeStore) -> None:
    _add_finished(fake, 5)
    assert len((await client.get("/history?limit=3")).json()) == 3
    assert len((await client.get("/history?limit=1000")).json()) == 5


async def test_history_empty(client: httpx.AsyncClient) -> None:
    assert (await client.get("/history")).json() == []


@pytest.mark.parametrize("limit", ["0", "-1", "1001", "99999999999999999999", "ten", "1.5"])
async def test_history_bad_limit_is_422(client: httpx.AsyncClient, limit: str) -> None:
    resp = await client.get(f"/history?limit={limit}")
    assert resp.status_code == 422
    assert resp.json()["detail"][0]["loc"] == ["query", "limit"]


class FakeArchive:
    def __init__(self, entries: list[HistoryEntryOut], fail: bool = False) -> None:
        self.entries, self.fail = entries, fail
        self.asked: list[tuple[list[str], int]] = []

    async def recent(self, namespaces: list[str], limit: int) -> list[HistoryEntryOut]:
        self.asked.append((namespaces, limit))
        if self.fail:
            raise ArchiveUnavailable("down")
        return [e for e in self.entries if not namespaces or e.namespace in namespaces][:limit]

    async def last_run(self, namespace: str, connection: str) -> dict[str, object] | None:
        if self.fail:
            raise ArchiveUnavailable("down")
        return None


def _row(name: str, minute: int, **extra: object) -> dict[str, object]:
    from datetime import UTC, datetime

    row: dict[str, object] = {
        "run_name": name,
        "namespace": "test",
        "connection": "alpha",
        "trigger": "schedule",
        "batch": None,
        "phase": "Succeeded",
        "success": True,
        "started_at": datetime(2026, 11, 30, 6, minute, tzinfo=UTC),
        "finished_at": datetime(2026, 11, 30, 6, minute, 30, tzinfo=UTC),
        "duration_ms": 30000,
        "rows_inserted": 5,
        "records_reported": 5,
        "attempts": 1,
        "error": None,
    }
    row.update(extra)
    return row


async def _get(fake: FakeStore, archive: FakeArchive, path: str) -> httpx.Response:
    app = create_app(Settings(api_key="k-123456789"), kube=fake, archive=archive)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://t",
        headers={"X-API-Key": "k-123456789"},
    ) as c:
        return await c.get(path)


async def test_history_merges_archive_and_cluster(fake: FakeStore) -> None:
    _add_finished(fake, 2)  # 07:00, 07:01
    archive = FakeArchive(
        [
            history_entry_of_row(_row("alpha-01", 1)),  # also in the cluster: the cluster wins
            history_entry_of_row(_row("alpha-old2", 2)),
            history_entry_of_row(_row("alpha-old1", 1, phase="Failed", success=False, error="e")),
        ]
    )
    resp = await _get(fake, archive, "/history?limit=10")
    body = resp.json()
    assert [e["run_id"] for e in body] == ["alpha-01", "alpha-00", "alpha-old2", "alpha-old1"]
    assert body[0]["trigger"] == "api"
    assert body[2]["started_at"] == "2026-11-30T06:02:00Z" and body[2]["trigger"] == "schedule"
    assert body[3]["status"] == "failed" and body[3]["error"] == "e"
    assert all(e["namespace"] == "test" for e in body)
    assert resp.headers["X-DataPipelines-History-Archive"] == "ok"
    assert archive.asked == [(["test"], 10)]  # the archive is asked for the served namespaces


async def test_history_archive_outage_degrades_to_cluster(fake: FakeStore) -> None:
    _add_finished(fake, 2)
    resp = await _get(fake, FakeArchive([], fail=True), "/history")
    assert resp.status_code == 200 and len(resp.json()) == 2
    assert resp.headers["X-DataPipelines-History-Archive"] == "unavailable"


async def test_history_of_several_namespaces() -> None:
    fake = FakeStore("team-a", "team-b")
    fake.add_connection("alpha")
    fake.add_connection("beta", namespace="team-b")
    fake.add_run(
        "alpha-1",
        "alpha",
        "Succeeded",
        startTime="2026-11-30T07:00:00Z",
        completionTime="2026-11-30T07:00:30Z",
        result={"success": True},
    )
    fake.add_run(
        "beta-1",
        "beta",
        "Failed",
        namespace="team-b",
        startTime="2026-11-30T07:01:00Z",
        completionTime="2026-11-30T07:01:30Z",
        result={"success": False, "error": "e"},
    )
    archive = FakeArchive(
        [
            history_entry_of_row(_row("beta-0", 1, namespace="team-b")),
            history_entry_of_row(_row("elsewhere-0", 2, namespace="other")),
        ]
    )
    body = (await _get(fake, archive, "/history")).json()
    assert [(e["run_id"], e["namespace"]) for e in body] == [
        ("beta-1", "team-b"),
        ("alpha-1", "team-a"),
        ("beta-0", "team-b"),
    ]
    assert archive.asked == [(["team-a", "team-b"], 10)]
