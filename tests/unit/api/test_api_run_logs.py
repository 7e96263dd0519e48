"""GET /runs/{run_id}/logs: the pod's log while it exists, else the run's report; and
KubePodLogs over a stand-in CoreV1Api."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from datapipelines.api.apiserver import ApiServerError
from datapipelines.api.errors import KubeUnavailable
from datapipelines.api.main import create_app
from datapipelines.api.podlogs import LOG_LIMIT_BYTES, KubePodLogs, PodLog
from datapipelines.api.settings import Settings
from tests.unit.api.fakekube import AUTH, FakeStore


class FixedLogs:
    """A PodLogSource with one pod per run it knows."""

    def __init__(self, logs: dict[str, str]) -> None:
        self.logs = logs
        self.calls: list[tuple[str, str, int | None]] = []

    async def run_log(
        self, namespace: str, run_id: str, *, tail_lines: int | None
    ) -> PodLog | None:
        self.calls.append((namespace, run_id, tail_lines))
        if run_id not in self.logs:
            return None
        return PodLog(pod=f"{run_id}-pod", text=self.logs[run_id])


def client_for(fake: FakeStore, settings: Settings, pod_logs: Any = None) -> httpx.AsyncClient:
    app = create_app(settings, kube=fake, archive=None, pod_logs=pod_logs)
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://api.test", headers=AUTH
    )


async def test_pod_log_while_the_pod_exists(fake: FakeStore, settings: Settings) -> None:
    fake.add_run("alpha-1", "alpha", "Running")
    logs = FixedLogs({"alpha-1": "line 1\nline 2\n"})
    async with client_for(fake, settings, logs) as client:
        body = (await client.get("/runs/alpha-1/logs", params={"tail_lines": 5})).json()
    assert body == {
        "run_id": "alpha-1",
        "connection": "alpha",
        "phase": "Running",
        "source": "pod",
        "pod": "alpha-1-pod",
        "text": "line 1\nline 2\n",
        "truncated": False,
    }
    assert logs.calls == [("test", "alpha-1", 5)]


async def test_report_once_the_pod_is_gone(fake: FakeStore, settings: Settings) -> None:
    # the report of a run whose runner could not write its own (taken from the pod's
    # termination message): in the operator's result, with its truncation flag
    fake.add_run(
        "alpha-1",
        "alpha",
        "Succeeded",
        result={"success": True, "report": "a\nb\nc", "reportTruncated": True},
    )
    fake.add_run("alpha-2", "alpha", "Queued")
    async with client_for(fake, settings, FixedLogs({})) as client:
        report = (await client.get("/runs/alpha-1/logs")).json()
        tail = (await client.get("/runs/alpha-1/logs?tail_lines=2")).json()
        nothing = (await client.get("/runs/alpha-2/logs")).json()
    assert report["source"] == "report" and report["text"] == "a\nb\nc"
    assert report["truncated"] is True and report["pod"] is None
    assert tail["text"] == "b\nc"
    assert nothing["source"] == "none" and nothing["text"] == ""


async def test_without_a_pod_log_source_the_report(
    client: httpx.AsyncClient, fake: FakeStore
) -> None:
    fake.add_run(
        "alpha-1",
        "alpha",
        "Failed",
        result={"success": False, "reportTruncated": False},
        runnerResult={"success": False, "report": "boom", "reportTruncated": True},
    )
    body = (await client.get("/runs/alpha-1/logs")).json()
    assert body["source"] == "report" and body["text"] == "boom"  # the runner's own first
    assert body["truncated"] is True
    assert fake.report_reads == ["alpha-1"]  # read on demand, not kept in memory


async def test_unknown_run_and_bad_tail(client: httpx.AsyncClient, anon: httpx.AsyncClient) -> None:
    resp = await client.get("/runs/nope/logs")
    assert resp.status_code == 404 and "run 'nope' not found" in resp.json()["detail"]
    assert (await client.get("/runs/nope/logs?tail_lines=0")).status_code == 422
    assert (await anon.get("/runs/nope/logs")).status_code == 401


# --- KubePodLogs ------------------------------------------------------------------------------


def pod(name: str, created: datetime | None) -> dict[str, Any]:
    stamp = created.strftime("%Y-%m-%dT%H:%M:%SZ") if created else None
    return {"metadata": {"name": name, "creationTimestamp": stamp}}


class FakeCore:
    """The apiserver client's pod list and pod log reads."""

    def __init__(self, pods: list[dict[str, Any]], log: str | Exception = "log") -> None:
        self.pods = pods
        self.log = log
        self.listed: list[dict[str, Any]] = []
        self.read: list[tuple[str, dict[str, Any]]] = []

    async def get(self, path: str, params: Any = None, **kw: Any) -> dict[str, Any]:
        self.listed.append({"path": path, **(params or {})})
        return {"items": self.pods}

    async def request_text(self, method: str, path: str, **kw: Any) -> str:
        self.read.append((path, kw.get("params") or {}))
        if isinstance(self.log, Exception):
            raise self.log
        return self.log


class ReadyStore:
    namespace = "ns"
    api = None

    def ensure_ready(self) -> None:
        return None


def t(minute: int) -> datetime:
    return datetime(2026, 11, 30, 8, minute, tzinfo=UTC)


async def test_kube_pod_logs_reads_the_newest_pod() -> None:
    core = FakeCore([pod("r-a", t(1)), pod("r-c", t(3)), pod("r-b", t(2))], log="hello\n")
    logs = KubePodLogs(ReadyStore(), api=core)  # type: ignore[arg-type]
    got = await logs.run_log("ns", "r", tail_lines=10)
    assert got == PodLog(pod="r-c", text="hello\n", truncated=False)
    assert core.listed[0]["path"] == "/api/v1/namespaces/ns/pods"
    assert core.listed[0]["labelSelector"] == "datapipelines.io/run=r"
    path, params = core.read[0]
    assert path == "/api/v1/namespaces/ns/pods/r-c/log"
    assert (params["tailLines"], params["limitBytes"]) == (10, LOG_LIMIT_BYTES)


async def test_kube_pod_logs_edge_cases() -> None:
    store: Any = ReadyStore()
    assert await KubePodLogs(store, api=FakeCore([])).run_log("ns", "r", tail_lines=None) is None
    gone = FakeCore([pod("r-a", None)], log=ApiServerError(404, "gone"))
    assert await KubePodLogs(store, api=gone).run_log("ns", "r", tail_lines=None) is None
    waiting = FakeCore([pod("r-a", t(1))], log=ApiServerError(400, "waiting"))
    assert await KubePodLogs(store, api=waiting).run_log("ns", "r", tail_lines=None) == PodLog(
        pod="r-a", text=""
    )
    big = FakeCore([pod("r-a", t(1))], log="x" * LOG_LIMIT_BYTES)
    got = await KubePodLogs(store, api=big).run_log("ns", "r", tail_lines=None)
    assert got is not None and got.truncated is True
    refused = FakeCore([pod("r-a", t(1))], log=ApiServerError(403, "forbidden"))
    with pytest.raises(KubeUnavailable, match="not allowed"):
        await KubePodLogs(store, api=refused).run_log("ns", "r", tail_lines=None)
    with pytest.raises(KubeUnavailable, match="not connected"):
        await KubePodLogs(store).run_log("ns", "r", tail_lines=None)


async def test_the_kept_log_once_the_pod_is_gone(fake: FakeStore, settings: Settings) -> None:
    from datapipelines.runner.keptlog import LogKeeper

    keeper = LogKeeper()
    for line in ("extracting items", "page 3: HTTP 401", "bad credentials: the source said no"):
        keeper.add(line)
    fake.add_run(
        "alpha-9",
        "alpha",
        "Failed",
        result={"success": False, "error": "bad credentials: the source said no", "report": "R"},
        runnerResult={
            "success": False,
            "report": "R",
            "log": keeper.kept().model_dump(by_alias=True),
        },
    )
    async with client_for(fake, settings, FixedLogs({})) as client:
        body = (await client.get("/runs/alpha-9/logs")).json()
        tail = (await client.get("/runs/alpha-9/logs", params={"tail_lines": 1})).json()
    assert body["source"] == "stored" and body["truncated"] is False
    assert body["text"].splitlines() == [
        "extracting items",
        "page 3: HTTP 401",
        "bad credentials: the source said no",
    ]
    assert tail["text"] == "bad credentials: the source said no\n"


async def test_a_run_beyond_the_history_limit_is_read_from_the_archive(
    fake: FakeStore, settings: Settings
) -> None:
    from datapipelines.runner.keptlog import LogKeeper

    keeper = LogKeeper()
    keeper.add("the error line")

    class Archive:
        asked: list[tuple[list[str], str]] = []

        async def archived_log(self, namespaces: list[str], run_id: str) -> dict[str, Any] | None:
            self.asked.append((namespaces, run_id))
            if run_id != "alpha-old":
                return None
            log = keeper.kept().model_dump(by_alias=True)
            return {"namespace": "test", "connection": "alpha", "phase": "Failed", "log": log}

    archive = Archive()
    app = create_app(settings, kube=fake, archive=archive, pod_logs=FixedLogs({}))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://api.test", headers=AUTH
    ) as client:
        body = (await client.get("/runs/alpha-old/logs")).json()
        missing = await client.get("/runs/nope/logs")
    assert (body["source"], body["connection"], body["text"]) == (
        "stored",
        "alpha",
        "the error line\n",
    )
    assert missing.status_code == 404 and "archive" in missing.json()["detail"]
    assert archive.asked[0] == ([], "alpha-old")  # an unrestricted key reads every namespace
