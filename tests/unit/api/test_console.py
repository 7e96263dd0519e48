"""The console without a browser: its view models (pure), sessions, and every page and action
over the in-memory store (sign-in, CSRF, scopes, fragments, the event stream)."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from pathlib import Path

import httpx
import pytest

from datapipelines.api import keyring
from datapipelines.api.console import views
from datapipelines.api.console.session import SessionSigner, derive_secret
from datapipelines.api.deps import NOT_CONFIGURED
from datapipelines.api.main import create_app
from datapipelines.api.models import (
    ConnectionStatusOut,
    HistoryEntryOut,
    ProgressOut,
    TaskStatusOut,
)
from datapipelines.api.settings import Settings
from tests.support.asgi_server import AsgiServer
from tests.unit.api.fakekube import KEY, FakeStore

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


# --- view models -----------------------------------------------------------------------------


def status(**fields: object) -> ConnectionStatusOut:
    base: dict[str, object] = dict(
        name="a", type="rest_api", enabled=True, schema_name="a", last_run_at=None, namespace="ns"
    )
    return ConnectionStatusOut.model_validate({**base, **fields})


def task(**fields: object) -> TaskStatusOut:
    base: dict[str, object] = dict(
        task_id="a-1", kind="single", status="running", connections=["a"], completed=[],
        canceled=False, started_at=None, active=True, phase="Running",
    )  # fmt: skip
    return TaskStatusOut.model_validate({**base, **fields})


def test_health_reads_in_on_call_order() -> None:
    running = task(progress=ProgressOut(stage="extract", records_extracted=1200))
    assert views.health_of(status(last_run_success=False), running) == views.Health.RUNNING
    assert views.health_of(status(enabled=False), None) == views.Health.DISABLED
    assert views.health_of(status(ready=False), None) == views.Health.NOT_READY
    assert views.health_of(status(last_run_success=False), None) == views.Health.FAILING
    assert views.health_of(status(), None) == views.Health.NEVER_RAN
    assert views.health_of(status(last_run_success=True), None) == views.Health.OK
    row = views.connection_row(
        status(schedule="0 * * * *", last_run_duration_ms=61_500),
        time_zone="Europe/London",
        active=running,
        last_rows=42,
        now=NOW,
    )
    assert row.next_tick == "2026-12-07 13:00 GMT"
    assert row.last_duration == "1 min 1 s" and row.last_rows == 42
    assert row.active_progress == "extract · 1,200 records extracted"


def test_filters_and_durations() -> None:
    rows = [
        views.connection_row(status(name=n, type=t, last_run_success=ok), time_zone=None,
                             active=None, last_rows=None, now=NOW)
        for n, t, ok in [("hubspot-crm", "hubspot", True), ("orders", "sql_database", False)]
    ]  # fmt: skip
    assert [r.name for r in views.filter_rows(rows, "HUB", "all")] == ["hubspot-crm"]
    assert [r.name for r in views.filter_rows(rows, "", "failing")] == ["orders"]
    assert views.health_counts(rows)["failing"] == 1
    assert views.duration_text(None) is None and views.duration_text(1234) == "1.2 s"
    assert views.duration_text(2 * 3600_000 + 5 * 60_000) == "2 h 5 min"


def entry(i: int, status: str = "succeeded", connection: str = "a") -> HistoryEntryOut:
    return HistoryEntryOut(
        run_id=f"r{i}", connection=connection, kind="single", status=status,  # type: ignore[arg-type]
        phase=status.title(), success=status == "succeeded",
        started_at=f"2026-12-{1 + i % 7:02d}T00:00:00Z",
    )  # fmt: skip


def test_history_filters_and_pages() -> None:
    entries = [entry(i, "failed" if i % 3 == 0 else "succeeded", f"c{i % 2}") for i in range(120)]
    first = views.history_page(entries, views.HistoryFilter())
    assert (first.page, first.pages, first.total, len(first.entries)) == (1, 3, 120, 50)
    last = views.history_page(entries, views.HistoryFilter(page=9))
    assert last.page == 3 and len(last.entries) == 20
    failed = views.history_page(entries, views.HistoryFilter(status="failed", connection="C1"))
    assert failed.total == 20 and all(e.status == "failed" for e in failed.entries)
    recent = views.history_page(entries, views.HistoryFilter(since=date(2026, 12, 7)))
    assert {e.started_at for e in recent.entries} == {"2026-12-07T00:00:00Z"}
    flt = views.HistoryFilter(connection="c1", status="failed")
    assert flt.query(page=2) == "connection=c1&status=failed&page=2"
    assert flt.query(page=1) == "connection=c1&status=failed"


def test_manifest_yaml_leaves_out_the_bookkeeping() -> None:
    text = views.manifest_yaml(
        {
            "apiVersion": "datapipelines.io/v1alpha1",
            "kind": "PipelineConnection",
            "metadata": {
                "name": "a", "namespace": "ns", "managedFields": [{"x": 1}], "uid": "u",
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{...}"},
            },
            "spec": {"type": "hubspot", "hubspot": {"token": {"secretName": "s", "key": "k"}}},
            "status": {"conditions": []},
        }
    )  # fmt: skip
    assert "managedFields" not in text and "last-applied" not in text and "status" not in text
    assert "secretName: s" in text


def test_table_progress_joins_extracted_and_loaded() -> None:
    t = task(
        progress=ProgressOut(tables={"items": 10, "b": {"records": 3}}, rows_loaded={"items": 8})
    )
    assert views.table_progress(t) == [("b", 3, None), ("items", 10, 8)]


# --- sessions --------------------------------------------------------------------------------


def test_sessions_are_signed_and_expire() -> None:
    signer = SessionSigner(derive_secret(None, [b"d" * 32]), lifetime=60)
    session, cookie = signer.new(b"k" * 32, now=1000)
    assert signer.read(cookie, now=1001) == session
    assert signer.read(cookie, now=1061) is None  # expired
    payload, sig = cookie.split(".")
    assert signer.read(payload + "." + sig[:-2] + "AA", now=1001) is None  # forged
    other = SessionSigner(derive_secret(None, [b"e" * 32]), lifetime=60)
    assert other.read(cookie, now=1001) is None  # another installation's secret
    assert derive_secret(None, [b"d" * 32]) == derive_secret(None, [b"d" * 32])  # replicas agree
    assert derive_secret(None, []) != derive_secret(None, [])  # random when nothing to derive


# --- pages and actions -----------------------------------------------------------------------


@pytest.fixture
def store() -> FakeStore:
    fake = FakeStore("team-a", "team-b")
    fake.add_connection("alpha", schedule="*/5 * * * *")
    fake.add_connection("slow", concurrencyPolicy="Queue")
    fake.add_connection("beta", namespace="team-b")
    fake.add_run("alpha-1", "alpha", "Running", startTime="2026-12-07T10:00:00Z")
    fake.update_run_status("alpha-1", progress={"stage": "extract", "recordsExtracted": 700})
    fake.add_run("slow-old", "slow", "Failed", startTime="2026-12-06T10:00:00Z")
    fake.finish_run("slow-old", "Failed", success=False, error="HTTP 500 from the source")
    return fake


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    path = tmp_path / "keys.json"
    path.write_text(
        json.dumps(
            {"keys": [{"id": "team-a", "key": "team-a-key-0123456789", "namespaces": ["team-a"]}]}
        )
    )
    return path


@pytest.fixture
async def ui(store: FakeStore, keys_file: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(api_key=KEY, api_keys_file=keys_file, namespace="team-a,team-b")  # type: ignore[arg-type]
    app = create_app(settings, kube=store, archive=None)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="https://console.test"
    ) as client:
        yield client


async def sign_in(ui: httpx.AsyncClient, key: str = KEY) -> str:
    """Signs in; returns the page's CSRF token."""
    form = await ui.get("/ui/login")
    token = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert token is not None
    resp = await ui.post("/ui/login", data={"key": key, "csrf": token.group(1), "next": "/ui/"})
    assert resp.status_code == 303, resp.text
    home = await ui.get("/ui/")
    csrf = re.search(r'name="csrf" value="([^"]+)"', home.text)
    assert csrf is not None
    return csrf.group(1)


async def test_nothing_without_signing_in(ui: httpx.AsyncClient) -> None:
    for path in ("/ui/", "/ui/history", "/ui/tasks/alpha-1", "/ui/connections/team-a/alpha"):
        resp = await ui.get(path)
        assert resp.status_code == 303 and resp.headers["location"].startswith("/ui/login?next=")
    assert (await ui.get("/ui/events")).status_code == 401
    assert (await ui.get("/ui/", headers={"X-Console-Fragment": "1"})).status_code == 401
    assert (await ui.post("/ui/run_selected", data={"csrf": "x"})).status_code == 401


async def test_sign_in_refuses_a_wrong_key_without_saying_why(ui: httpx.AsyncClient) -> None:
    form = await ui.get("/ui/login")
    token = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)  # type: ignore[union-attr]
    wrong = await ui.post("/ui/login", data={"key": "not-a-key", "csrf": token})
    assert wrong.status_code == 401 and "That key is not accepted." in wrong.text
    assert "dp_console=" not in wrong.headers.get("set-cookie", "")
    forged = await ui.post("/ui/login", data={"key": KEY, "csrf": "guess"})
    assert forged.status_code == 403


async def test_session_cookie_flags(ui: httpx.AsyncClient) -> None:
    form = await ui.get("/ui/login")
    token = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)  # type: ignore[union-attr]
    resp = await ui.post("/ui/login", data={"key": KEY, "csrf": token, "next": "//evil.example"})
    assert resp.headers["location"] == "/ui/"  # no open redirect
    cookie = next(c for c in resp.headers.get_list("set-cookie") if c.startswith("dp_console="))
    for flag in ("HttpOnly", "SameSite=strict", "Secure", "Path=/ui", "Max-Age=28800"):
        assert flag.lower() in cookie.lower(), cookie
    assert KEY not in cookie


async def test_pages_show_the_connections_runs_and_history(ui: httpx.AsyncClient) -> None:
    await sign_in(ui)
    home = await ui.get("/ui/")
    assert home.status_code == 200
    assert home.headers["content-security-policy"].startswith("default-src 'self'")
    for text in ("alpha", "slow", "beta", "700 records extracted", "HTTP 500 from the source"):
        assert text in home.text, text
    assert 'data-phase="Running"' in home.text and "next 2026" in home.text
    failing = await ui.get("/ui/", params={"health": "failing"})
    assert "slow" in failing.text and 'data-connection="alpha"' not in failing.text
    part = await ui.get("/ui/", headers={"X-Console-Fragment": "1"})
    assert "<html" not in part.text and 'data-connection="alpha"' in part.text
    conn = await ui.get("/ui/connections/team-a/alpha")
    assert "kind: PipelineConnection" in conn.text and "alpha-1" in conn.text
    run = await ui.get("/ui/tasks/alpha-1")
    assert "extract" in run.text and 'href="/ui/connections/team-a/alpha"' in run.text
    failed = await ui.get("/ui/tasks/slow-old")
    assert "HTTP 500 from the source" in failed.text
    history = await ui.get("/ui/history", params={"status": "failed"})
    assert "slow-old" in history.text and "1 run" in history.text
    assert (await ui.get("/ui/tasks/nope")).status_code == 404


async def test_actions_need_the_csrf_token(ui: httpx.AsyncClient, store: FakeStore) -> None:
    csrf = await sign_in(ui)
    refused = await ui.post("/ui/connections/team-a/slow/run")
    assert refused.status_code == 403 and "CSRF" in refused.text
    assert (await ui.post("/ui/connections/team-a/slow/run", data={"csrf": "x"})).status_code == 403
    started = await ui.post("/ui/connections/team-a/slow/run", data={"csrf": csrf})
    assert started.status_code == 303 and started.headers["location"].startswith("/ui/tasks/slow-")
    run_id = started.headers["location"].rsplit("/", 1)[1]
    assert store.run_obj(run_id, namespace="team-a") is not None
    cancelled = await ui.post(f"/ui/tasks/{run_id}/cancel", data={"csrf": csrf})
    assert cancelled.status_code == 303
    assert store.run_obj(run_id, namespace="team-a")["spec"]["cancelRequested"] is True  # type: ignore[index]
    conflict = await ui.post("/ui/connections/team-a/alpha/run", data={"csrf": csrf})
    assert conflict.status_code == 409 and "alpha-1" in conflict.text
    batch = await ui.post("/ui/run_selected", data={"csrf": csrf})
    assert batch.status_code == 303 and "/ui/tasks/batch-" in batch.headers["location"]
    assert "Batch" in (await ui.get(batch.headers["location"])).text


async def test_sign_out_ends_the_session(ui: httpx.AsyncClient) -> None:
    csrf = await sign_in(ui)
    cookie = ui.cookies.get("dp_console")
    out = await ui.post("/ui/logout", data={"csrf": csrf})
    assert out.status_code == 303 and out.headers["location"] == "/ui/login"
    assert (await ui.get("/ui/")).status_code == 303
    ui.cookies.set("dp_console", cookie or "", domain="console.test", path="/ui")
    assert (await ui.get("/ui/")).status_code == 303  # the old cookie replayed: still ended


async def test_a_scoped_key_sees_its_namespace_only(
    ui: httpx.AsyncClient, keys_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await sign_in(ui, "team-a-key-0123456789")
    home = await ui.get("/ui/")
    assert 'data-connection="alpha"' in home.text and 'data-connection="beta"' not in home.text
    assert (await ui.get("/ui/connections/team-b/beta")).status_code == 404
    revoke(keys_file)
    monkeypatch.setattr(keyring, "RELOAD_CHECK_SECONDS", 0.0)
    assert (await ui.get("/ui/")).status_code == 303  # revoked: its session ends


def revoke(keys_file: Path) -> None:
    keys_file.write_text(json.dumps({"keys": []}))
    later = time.time() + 5
    os.utime(keys_file, (later, later))


async def test_no_key_configured_is_the_same_500(store: FakeStore) -> None:
    app = create_app(Settings(), kube=store, archive=None)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as ui:
        resp = await ui.get("/ui/login")
    assert resp.status_code == 500 and resp.text == NOT_CONFIGURED


async def test_the_console_can_be_turned_off(store: FakeStore) -> None:
    app = create_app(Settings(api_key=KEY, console=False), kube=store, archive=None)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as ui:
        assert (await ui.get("/ui/login")).status_code == 404


def test_the_event_stream_pushes_changes_and_is_bounded(store: FakeStore) -> None:
    app = create_app(Settings(api_key=KEY, namespace="team-a,team-b"), kube=store, archive=None)  # type: ignore[arg-type]
    with AsgiServer(app) as srv, httpx.Client(base_url=srv.url, timeout=10) as client:
        form = client.get("/ui/login")
        token = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)  # type: ignore[union-attr]
        client.post("/ui/login", data={"key": KEY, "csrf": token})
        streams = []
        try:
            with client.stream("GET", "/ui/events") as events:
                assert events.headers["content-type"].startswith("text/event-stream")
                lines = events.iter_lines()
                assert next(lines) == "retry: 2000"
                srv.call(store.add_connection, "gamma")
                seen = [next(lines) for _ in range(3)]
                assert "event: change" in seen
                for _ in range(3):
                    s = client.stream("GET", "/ui/events")
                    streams.append(s)
                    assert s.__enter__().status_code == 200
                fifth = client.get("/ui/events")
                assert fifth.status_code == 429 and fifth.headers["retry-after"] == "2"
        finally:
            for s in streams:
                s.__exit__(None, None, None)


def test_connections_are_paged_and_only_the_page_gets_its_next_tick() -> None:
    rows = [
        views.connection_row(status(name=f"c{i:03d}", schedule="0 * * * *"), time_zone=None,
                             active=None, last_rows=None)
        for i in range(250)
    ]  # fmt: skip
    assert all(r.next_tick is None for r in rows)
    shown, page, pages = views.page_of(rows, 3)
    assert (len(shown), page, pages) == (50, 3, 3) and shown[0].name == "c200"
    assert views.page_of(rows, 99)[1] == 3 and views.page_of([], 1) == ([], 1, 1)
    assert views.with_next_tick(shown[0], NOW).next_tick == "2026-12-07 13:00 UTC"


async def test_the_connections_page_links_its_pages(
    ui: httpx.AsyncClient, store: FakeStore
) -> None:
    for i in range(120):
        store.add_connection(f"bulk-{i:03d}")
    await sign_in(ui)
    first = await ui.get("/ui/", params={"q": "bulk"})
    assert "120 of 123" in first.text and "page 1 of 2" in first.text
    assert 'href="/ui/?q=bulk&amp;health=all&amp;page=2"' in first.text
    second = await ui.get("/ui/", params={"q": "bulk", "page": 2})
    assert (
        'data-connection="bulk-119"' in second.text
        and 'data-connection="bulk-000"' not in second.text
    )


def test_a_cancelled_last_run_is_shown_as_such_and_is_no_failure() -> None:
    conn = status(last_run_success=False, last_run_error="cancelled: terminated by signal 15")
    row = views.connection_row(
        conn, time_zone=None, active=None, last_rows=0, last_phase="Cancelled"
    )
    assert row.health == views.Health.OK
    assert row.last_phase == "Cancelled"
    failed = views.connection_row(
        conn, time_zone=None, active=None, last_rows=0, last_phase="Failed"
    )
    assert failed.health == views.Health.FAILING


async def test_a_finished_run_shows_the_log_kept_with_it(
    ui: httpx.AsyncClient, store: FakeStore
) -> None:
    from datapipelines.runner.keptlog import LogKeeper

    keeper = LogKeeper()
    keeper.add("bad credentials: the source said no")
    store.add_run(
        "slow-kept",
        "slow",
        "Failed",
        namespace="team-a",
        result={"success": False, "error": "bad credentials"},
        runnerResult={"success": False, "log": keeper.kept().model_dump(by_alias=True)},
        startTime="2026-12-06T11:00:00Z",
    )
    await sign_in(ui)
    page = await ui.get("/ui/tasks/slow-kept")
    assert page.status_code == 200
    assert "the log kept with the run" in page.text and "the source said no" in page.text
