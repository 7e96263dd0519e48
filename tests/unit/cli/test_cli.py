"""The `datapipelines` console script as a real process against the API served by uvicorn on
127.0.0.1 over the in-memory fake store (runs and batches scripted as the operator would)."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pexpect
import pytest
import yaml

from datapipelines.api.main import create_app
from datapipelines.api.podlogs import PodLog
from datapipelines.api.settings import Settings
from datapipelines.cli.config import find_key_file, resolve
from tests.support.asgi_server import AsgiServer
from tests.unit.api.fakekube import KEY, OLD_KEY, FakeStore
from tests.unit.api.runscript import cancel_ends_runs, script_batches, script_runs, typical

CLI = str(Path(sys.executable).with_name("datapipelines"))
FAST = ["--interval", "0.05"]


class PodLogs:
    async def run_log(
        self, namespace: str, run_id: str, *, tail_lines: int | None
    ) -> PodLog | None:
        if run_id != "alpha-live":
            return None
        return PodLog(pod="alpha-live-x1", text="extracting\nloading\n")


@pytest.fixture
def store() -> FakeStore:
    fake = FakeStore()
    fake.add_connection("alpha")
    fake.add_connection("beta", enabled=False, type="sql_database")
    fake.add_connection("gamma", concurrencyPolicy="Queue", schedule="*/5 * * * *")
    fake.add_run(
        "alpha-old",
        "alpha",
        "Succeeded",
        result={"success": True, "rowsInserted": 5, "report": "loaded 5 rows\ndone"},
        startTime="2026-11-30T07:00:00Z",
        completionTime="2026-11-30T07:00:01Z",
    )
    fake.add_run("alpha-live", "alpha", "Succeeded", result={"success": True})
    return fake


@pytest.fixture
def server(store: FakeStore) -> Iterator[AsgiServer]:
    app = create_app(
        Settings(api_key=f"{KEY},{OLD_KEY}", namespace="test"),
        kube=store,
        archive=None,
        pod_logs=PodLogs(),
    )
    with AsgiServer(app) as srv:
        srv.call(script_runs, store, typical(gap=0.05))
        srv.call(script_batches, store, typical(gap=0.02))
        srv.call(cancel_ends_runs, store)
        yield srv


NO_CONFIG = "/nonexistent/datapipelines-config.yaml"  # never the machine's own contexts


def environment(url: str | None, key: str | None = KEY) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATAPIPELINES_")}
    env.pop("COLUMNS", None)
    env["DATAPIPELINES_CONFIG"] = NO_CONFIG
    if url is not None:
        env["DATAPIPELINES_API_URL"] = url
    if key is not None:
        env["DATAPIPELINES_API_KEY"] = key
    return env


def cli(
    server: AsgiServer | None,
    *args: str,
    key: str | None = KEY,
    cwd: Path | None = None,
    url: str | None = None,
    config: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    env = environment(url or (server.url if server else None), key)
    if config is not None:
        env["DATAPIPELINES_CONFIG"] = str(config)
    return subprocess.run(
        [CLI, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=60
    )


def as_json(proc: subprocess.CompletedProcess[str]) -> Any:
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 4, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    return lines[0]


# --- reading -----------------------------------------------------------------------------------


def test_connections(server: AsgiServer) -> None:
    table = cli(server, "connections")
    assert table.returncode == 0, table.stderr
    header = table.stdout.splitlines()[0].split()
    assert header == [
        "NAME",
        "TYPE",
        "ENABLED",
        "SCHEMA",
        "POLICY",
        "SCHEDULE",
        "LAST",
        "RUN",
        "ACTIVE",
    ]
    assert "*/5 * * * *" in table.stdout and "sql_database" in table.stdout
    every = as_json(cli(server, "connections", "-o", "json"))
    enabled = as_json(cli(server, "connections", "--enabled", "--output", "json"))
    assert [c["name"] for c in every] == ["alpha", "beta", "gamma"]
    assert [c["name"] for c in enabled] == ["alpha", "gamma"]
    assert every == httpx.get(f"{server.url}/connections", headers={"X-API-Key": KEY}).json()


def test_status(server: AsgiServer) -> None:
    table = cli(server, "status", "alpha")
    assert table.returncode == 0 and "last run       alpha-" in table.stdout
    body = as_json(cli(server, "status", "alpha", "-o", "json"))
    assert body["name"] == "alpha" and body["last_run_success"] is True
    assert one_error_line(cli(server, "status", "nope")) == "error: connection 'nope' not found"


def test_tasks_history_and_logs(server: AsgiServer, store: FakeStore) -> None:
    task = cli(server, "tasks", "alpha-old")
    assert task.returncode == 0 and "Succeeded" in task.stdout and "rows inserted" in task.stdout
    assert as_json(cli(server, "tasks", "alpha-old", "-o", "json"))["result"]["rows_inserted"] == 5
    progress = {"stage": "extract", "recordsExtracted": 42, "tables": {"items": 42}}
    server.call(store.add_run, "gamma-busy", "gamma", "Running", progress=progress)
    busy = cli(server, "tasks", "gamma-busy")
    assert "records extracted  42" in busy.stdout and "RECORDS EXTRACTED" in busy.stdout
    history = as_json(cli(server, "history", "--limit", "1", "-o", "json"))
    assert len(history) == 1
    assert "alpha-old" in cli(server, "history").stdout
    report = cli(server, "logs", "alpha-old")
    assert report.returncode == 0 and report.stdout == "loaded 5 rows\ndone\n"
    assert "its report" in report.stderr
    tail = cli(server, "logs", "alpha-old", "--tail", "1")
    assert tail.stdout == "done\n"
    pod = cli(server, "logs", "alpha-live")
    assert pod.stdout == "extracting\nloading\n" and "log of pod alpha-live-x1" in pod.stderr
    assert as_json(cli(server, "logs", "alpha-live", "-o", "json"))["source"] == "pod"
    assert "run 'nope' not found" in one_error_line(cli(server, "logs", "nope"))
    assert "task 'nope' not found" in one_error_line(cli(server, "tasks", "nope"))


# --- runs --------------------------------------------------------------------------------------


def test_run_in_the_background(server: AsgiServer) -> None:
    started = as_json(cli(server, "run", "alpha", "-o", "json"))
    assert started["connection"] == "alpha" and started["task_id"].startswith("alpha-")
    table = cli(server, "run", "gamma")
    assert table.returncode == 0 and table.stdout.startswith("started run gamma-")
    assert "datapipelines cancel gamma-" in table.stdout


def test_run_and_wait_prints_progress_lines_and_the_result(
    server: AsgiServer, store: FakeStore
) -> None:
    server.call(script_runs, store, typical(gap=0.25))  # states far apart: every one is seen
    proc = cli(server, "run", "alpha", "--wait", "--report", *FAST)
    assert proc.returncode == 0, proc.stderr
    assert "status            succeeded" in proc.stdout
    assert "rows inserted     1,500" in proc.stdout
    assert "items   1,400               1,400" in proc.stdout  # per table
    assert "loaded 10 rows" in proc.stdout  # the report
    # not a terminal: one line per state on stderr
    assert ": Queued" in proc.stderr
    assert "Running · extract · 750 records extracted · items 750" in proc.stderr
    assert "Running · load · 1,500 records extracted · items 1,400, users 100" in proc.stderr


def test_run_and_wait_json_is_the_sync_run_body(server: AsgiServer) -> None:
    body = as_json(cli(server, "run", "alpha", "--wait", "-o", "json", *FAST))
    assert body["success"] is True and body["rows_inserted"] == 1500
    assert body["report"] is None and body["run_id"].startswith("alpha-")
    assert {"duration_ms", "attempts", "records_reported", "progress_counts", "error"} <= set(body)


def test_failed_run_exits_1(server: AsgiServer, store: FakeStore) -> None:
    server.call(script_runs, store, typical(gap=0.02, phase="Failed", error="source down"))
    proc = cli(server, "run", "alpha", "--wait", *FAST)
    assert proc.returncode == 1, proc.stderr
    assert "source down" in proc.stdout and "failed" in proc.stdout
    body = json.loads(cli(server, "run", "gamma", "--wait", "-o", "json", *FAST).stdout)
    assert body["success"] is False


def test_cancelled_run_exits_3(server: AsgiServer, store: FakeStore) -> None:
    server.call(script_runs, store, typical(gap=5))  # slow
    env = environment(server.url)
    waiting = subprocess.Popen(
        [CLI, "run", "alpha", "--wait", *FAST],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    run_id = _created_run(server, store, "alpha")
    cancel = cli(server, "cancel", run_id)
    assert cancel.returncode == 0 and cancel.stdout.strip() == (
        f"cancellation of run '{run_id}' requested"
    )
    out, err = waiting.communicate(timeout=30)
    assert waiting.returncode == 3, err
    assert "cancelled" in out
    again = one_error_line(cli(server, "cancel", run_id))
    assert "has already finished (Cancelled)" in again


def test_conflict_is_one_line_with_the_way_out(server: AsgiServer, store: FakeStore) -> None:
    server.call(store.add_run, "alpha-active", "alpha", "Running")
    line = one_error_line(cli(server, "run", "alpha", "--wait"))
    assert "already has an active run 'alpha-active'" in line
    assert "datapipelines cancel alpha-active" in line


def test_run_all(server: AsgiServer) -> None:
    started = as_json(cli(server, "run-all", "-o", "json"))
    assert started["connections"] == ["alpha", "gamma"]
    proc = cli(server, "run-all", "--wait", *FAST)
    assert proc.returncode == 0, proc.stderr
    assert "finished: 2 of 2 connection(s) done" in proc.stdout
    lines = [line for line in proc.stderr.splitlines() if line.endswith("Succeeded")]
    assert [line.split(":")[0] for line in lines] == ["alpha", "gamma"]  # a line per connection
    final = as_json(cli(server, "run-all", "--wait", "-o", "json", *FAST))
    assert final["kind"] == "batch" and final["status"] == "finished"
    assert [r["success"] for r in final["runs"]] == [True, True]
    batch = as_json(cli(server, "tasks", final["task_id"], "-o", "json"))
    assert batch["completed"] == ["alpha", "gamma"]
    assert "CONNECTION" in cli(server, "tasks", final["task_id"]).stdout


def test_run_all_with_a_failed_run_exits_1(server: AsgiServer, store: FakeStore) -> None:
    server.call(script_batches, store, typical(gap=0.01, phase="Failed"))
    assert cli(server, "run-all", "--wait", *FAST).returncode == 1


# --- the API and its key -----------------------------------------------------------------------


def test_unreachable_api() -> None:
    line = one_error_line(cli(None, "connections", url="http://127.0.0.1:9"))
    assert line.startswith("error: cannot reach the API at http://127.0.0.1:9 (")
    assert "DATAPIPELINES_API_URL" in line


def test_key_refused_missing_and_from_the_demo_file(server: AsgiServer, tmp_path: Path) -> None:
    wrong = one_error_line(cli(server, "connections", key="wrong-key"))
    assert "invalid API key (the key from $DATAPIPELINES_API_KEY)" in wrong
    flag = one_error_line(cli(server, "--key", "wrong-key", "connections", key=None, cwd=tmp_path))
    assert "(the key from --key)" in flag
    none = one_error_line(cli(server, "connections", key=None, cwd=tmp_path))
    assert "missing API key" in none and "no key was sent" in none
    # run from inside the repository after `make demo`: .cluster/api-key, found upwards
    (tmp_path / ".cluster").mkdir()
    (tmp_path / ".cluster" / "api-key").write_text(OLD_KEY + "\n")
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    assert cli(server, "connections", key=None, cwd=deep).returncode == 0
    (tmp_path / ".cluster" / "api-key").write_text("stale-key\n")
    stale = one_error_line(cli(server, "connections", key=None, cwd=deep))
    assert str(tmp_path / ".cluster" / "api-key") in stale


def test_server_without_a_key_is_a_500_line(store: FakeStore) -> None:
    app = create_app(Settings(api_key=None, namespace="test"), kube=store, archive=None)
    with AsgiServer(app) as srv:
        line = one_error_line(cli(srv, "connections"))
    assert line == (
        "error: DATAPIPELINES_API_KEY is not configured on the server; set it to enable the API"
    )


def test_bad_usage_exits_2(server: AsgiServer) -> None:
    proc = cli(server, "run", "alpha", "--report")
    assert proc.returncode == 2 and "--report needs --wait" in proc.stderr
    assert cli(server, "history", "--limit", "0").returncode == 2
    assert cli(server, "connections", "-o", "xml").returncode == 2


def test_key_resolution(tmp_path: Path) -> None:
    assert find_key_file(tmp_path) is None
    target = resolve("http://h:1/", "new-key, old-key", key_from_env=True, cwd=tmp_path)
    assert (target.url, target.key, target.key_source) == (
        "http://h:1",
        "new-key",
        "$DATAPIPELINES_API_KEY",
    )
    assert resolve("http://h:1", None, key_from_env=False, cwd=tmp_path).key is None
    assert resolve("localhost:8081/", None, key_from_env=False, cwd=tmp_path).url == (
        "http://localhost:8081"
    )
    assert resolve("https://dp.example", None, key_from_env=False).url == "https://dp.example"


# --- a terminal ---------------------------------------------------------------------------------


def spawn(server: AsgiServer, *args: str) -> pexpect.spawn:
    env = environment(server.url)
    env["TERM"] = "xterm-256color"
    return pexpect.spawn(
        CLI, list(args), env=env, dimensions=(40, 140), encoding="utf-8", timeout=30
    )


def test_live_progress_display_in_a_pseudo_terminal(server: AsgiServer, store: FakeStore) -> None:
    server.call(script_runs, store, typical(gap=0.3))
    child = spawn(server, "run", "alpha", "--wait", "--interval", "0.05")
    screen = io.StringIO()
    child.logfile_read = screen
    child.expect("RECORDS EXTRACTED")  # the live table, per table
    child.expect(r"alpha-\d+ +Running +stage extract +750 records extracted")
    child.expect(r"items +1,400 +1,400 +load")  # rows loaded, at the load stage
    child.expect(r"status[^\n]*succeeded")  # the result table once it ended
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    drawn = screen.getvalue()
    assert "\x1b[2K" in drawn and "\x1b[1A" in drawn  # redrawn in place: a live display


def test_interrupt_while_waiting_leaves_the_run_going(server: AsgiServer, store: FakeStore) -> None:
    server.call(script_runs, store, typical(gap=10))
    child = spawn(server, "run", "gamma", "--wait", "--interval", "0.05")
    child.expect("stage")  # the live display is up
    child.kill(signal.SIGINT)
    child.expect(r"interrupted: gamma-\d+ goes on")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 130


def _created_run(server: AsgiServer, store: FakeStore, connection: str) -> str:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        names = server.call(
            lambda: [
                r.name
                for r in store.catalog.runs.values()
                if r.spec.connection_name == connection
                and r.name not in ("alpha-old", "alpha-live")
            ]
        )
        if names:
            return str(names[-1])
        time.sleep(0.05)
    raise AssertionError(f"no run of {connection} was created")


def test_oauth2_secret_prints_the_consent_url_then_the_secret_for_the_code() -> None:
    from datapipelines.mocks import serve
    from datapipelines.mocks.xero import AUTH_CODE, CLIENT_ID, CLIENT_SECRET, XeroApi

    with serve(XeroApi(rows=1)) as api:
        common = [
            "oauth2-secret", "xero", "--connection", "books", "--client-id", CLIENT_ID,
            "--client-secret", CLIENT_SECRET, "--redirect-uri", "http://localhost:8080/cb",
            "--token-url", f"{api.url}/connect/token",
        ]  # fmt: skip
        consent = cli(None, *common)
        assert consent.returncode == 0, consent.stderr
        assert consent.stdout.startswith("https://login.xero.com/identity/connect/authorize?")
        assert "scope=offline_access" in consent.stdout and "--code" in consent.stderr
        secret = as_json(cli(None, *common, "--code", AUTH_CODE))
        reused = cli(None, *common, "--code", AUTH_CODE)  # a code works once
    assert secret["metadata"] == {
        "name": "xero",
        "annotations": {"datapipelines.io/oauth2-connection": "books"},
    }
    assert secret["stringData"] == {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "refresh_token": "xero-refresh-1",
    }
    assert reused.returncode == 4 and "invalid_grant" in reused.stderr, reused.stderr


def test_a_kubernetes_token_instead_of_a_key() -> None:
    from datapipelines.api.kubeauth import KubeAuth
    from tests.unit.api.test_api_access import FakeReviews

    store = FakeStore("team-a")
    store.add_connection("a1")
    reviews = FakeReviews()
    app = create_app(
        Settings(api_key=KEY, namespace="team-a"),
        kube=store,
        archive=None,
        kube_auth=KubeAuth(reviews.post, cache_seconds=0),
    )
    with AsgiServer(app) as srv:
        listed = as_json(cli(srv, "--token", "token-viewer", "connections", "-o", "json", key=None))
        assert [c["name"] for c in listed] == ["a1"]
        refused = cli(srv, "--token", "token-viewer", "run", "a1", key=None)
        assert refused.returncode == 4 and "may not run in namespace 'team-a'" in refused.stderr
        forged = cli(srv, "--token", "forged", "connections", key=None)
        assert forged.returncode == 4 and "rejected the bearer token" in forged.stderr
        assert "--token" in forged.stderr


def test_version_short_help_and_completion() -> None:
    version = cli(None, "--version", key=None)
    assert version.returncode == 0 and re.fullmatch(r"datapipelines \S+\n", version.stdout)
    short = cli(None, "-h", key=None)
    assert short.returncode == 0 and "Usage: datapipelines" in short.stdout
    assert cli(None, "run", "-h", key=None).returncode == 0
    # the shell named, not detected from the parent processes (a test's parents vary)
    env = {**environment(None, None), "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}
    completion = subprocess.run(
        [CLI, "--show-completion", "bash"], env=env, capture_output=True, text=True, timeout=60
    )
    assert completion.returncode == 0 and "_datapipelines_completion" in completion.stdout


def test_history_filters_by_connection_and_status(server: AsgiServer) -> None:
    every = as_json(cli(server, "history", "-l", "50", "-o", "json"))
    assert every, "the fixture has finished runs"
    only = as_json(
        cli(server, "history", "--connection", "alpha", "--status", "succeeded", "-o", "json")
    )
    assert only and all(e["connection"] == "alpha" and e["status"] == "succeeded" for e in only)
    assert as_json(cli(server, "history", "-c", "nope", "-o", "json")) == []
    assert cli(server, "history", "--status", "weird").returncode == 2


def test_yaml_and_name_outputs(server: AsgiServer) -> None:
    as_yaml = cli(server, "connections", "-o", "yaml")
    assert as_yaml.returncode == 0
    assert yaml.safe_load(as_yaml.stdout) == as_json(cli(server, "connections", "-o", "json"))
    names = cli(server, "connections", "-o", "name")
    assert names.stdout.split() == ["alpha", "beta", "gamma"]
    started = cli(server, "run", "gamma", "-o", "name")
    assert started.returncode == 0 and started.stdout.strip().startswith("gamma-")
    history = cli(server, "history", "-o", "name").stdout.split()
    assert "alpha-old" in history


def test_wide_and_no_headers(server: AsgiServer) -> None:
    wide = cli(server, "connections", "-o", "wide")
    assert wide.returncode == 0, wide.stderr
    header = wide.stdout.splitlines()[0].split()
    assert header[:2] == ["NAME", "NAMESPACE"] and "ERROR" in header
    bare = cli(server, "connections", "--no-headers")
    assert [line.split()[0] for line in bare.stdout.splitlines()] == ["alpha", "beta", "gamma"]
    history = cli(server, "history", "-o", "wide", "--no-headers")
    assert history.returncode == 0 and "RUN" not in history.stdout
    assert "alpha-old" in history.stdout
    assert "1.0 s" in history.stdout  # wall clock: 07:00:00 to 07:00:01


def test_ids_are_whole_at_80_columns_in_a_terminal(server: AsgiServer, store: FakeStore) -> None:
    long_name = "a-connection-with-a-long-name"
    server.call(store.add_connection, long_name, schedule="0 */6 * * *")
    server.call(
        lambda: store.add_run(
            f"{long_name}-x7k2p",
            long_name,
            "Failed",
            result={"success": False, "error": "source HTTP 404 at /items (unknown resource)"},
            startTime="2026-11-30T07:00:00Z",
            completionTime="2026-11-30T07:04:05Z",
        )
    )
    for args in (("connections",), ("history", "-l", "50"), ("history", "-o", "wide")):
        env = environment(server.url)
        env["TERM"] = "xterm-256color"
        child = pexpect.spawn(CLI, list(args), env=env, dimensions=(50, 80), encoding="utf-8")
        screen = re.sub(r"\x1b\[[0-9;]*m", "", child.read())
        child.close()
        assert child.exitstatus == 0, screen
        lines = screen.splitlines()
        assert max(len(line) for line in lines) <= 80, screen
        assert long_name in screen, screen
        if args[0] == "history":
            assert f"{long_name}-x7k2p" in screen, screen
        assert "…" not in screen
    assert "4m 05s" in cli(server, "history").stdout  # wall clock, start to end


def test_contexts_pick_the_api_and_key(server: AsgiServer, tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    key_file = tmp_path / "prod.key"
    key_file.write_text(KEY + "\n")
    made = cli(
        None, "config", "set-context", "prod", "--api", server.url, "--key-file", str(key_file),
        key=None, config=config,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert cli(None, "config", "set-context", "other", "--api", "http://127.0.0.1:9",
               key=None, config=config).returncode == 0  # fmt: skip
    assert config.stat().st_mode & 0o077 == 0, "the config may hold a key: owner only"
    assert cli(None, "config", "current-context", key=None, config=config).stdout == "prod\n"
    listed = as_json(cli(None, "config", "get-contexts", "-o", "json", key=None, config=config))
    assert [(c["name"], c["current"], c["auth"]) for c in listed] == [
        ("prod", True, "key-file"),
        ("other", False, "none"),
    ]
    names = as_json(cli(None, "connections", "-o", "json", key=None, config=config))
    assert [c["name"] for c in names] == ["alpha", "beta", "gamma"]
    switched = cli(None, "config", "use-context", "other", key=None, config=config)
    assert switched.returncode == 0 and "other" in switched.stdout
    down = cli(None, "connections", key=None, config=config)
    assert down.returncode == 4 and "127.0.0.1:9" in down.stderr
    assert cli(None, "--context", "prod", "connections", key=None, config=config).returncode == 0
    flag_wins = cli(server, "--context", "other", "connections", key=None, config=config)
    assert flag_wins.returncode == 4 and "refused the request" in flag_wins.stderr  # env URL
    unknown = cli(None, "config", "use-context", "nope", key=None, config=config)
    assert unknown.returncode == 2 and "known: prod, other" in unknown.stderr
    config.write_text("contexts: [{name: x, colour: red}]\n")
    broken = cli(None, "connections", key=None, config=config)
    assert broken.returncode == 2 and "contexts.0.colour" in broken.stderr


def test_logs_follow_until_the_run_ends() -> None:
    from datapipelines.cli.follow import follow_log, new_lines

    assert new_lines([], ["a", "b"]) == (["a", "b"], False)
    assert new_lines(["a", "b"], ["a", "b", "c"]) == (["c"], False)
    assert new_lines(["x", "b"], ["b", "c", "b", "d"]) == (["c", "b", "d"], False)
    assert new_lines(["a", "b"], ["c", "d"]) == (["c", "d"], True)
    bodies = iter(
        [
            {"source": "none", "phase": "Queued"},
            {"source": "pod", "pod": "p1", "phase": "Running", "text": "one\ntwo\n"},
            {"source": "pod", "pod": "p1", "phase": "Running", "text": "two\nthree\n"},
            {"source": "pod", "pod": "p2", "phase": "Running", "text": "retry\n"},
            {"source": "pod", "pod": "p2", "phase": "Succeeded", "text": "retry\ndone\n"},
        ]
    )
    out: list[str] = []
    notes: list[str] = []
    last = follow_log(lambda: next(bodies), out.append, notes.append, interval=0, sleep=id)
    assert "".join(out) == "one\ntwo\nthree\nretry\ndone\n"
    assert notes == ["# next attempt: log of pod p2"] and last["phase"] == "Succeeded"
    gone = iter([{"source": "report", "phase": "Failed", "text": "FAILED: x"}])
    out.clear()
    follow_log(lambda: next(gone), out.append, notes.append, interval=0)
    assert out == ["FAILED: x\n"]


def test_logs_follow_a_finished_run(server: AsgiServer) -> None:
    followed = cli(server, "logs", "alpha-live", "-f", "--interval", "0.05")
    assert followed.returncode == 0, followed.stderr
    assert followed.stdout == "extracting\nloading\n"
    assert "Succeeded" in followed.stderr


def test_schema_of_a_connection(server: AsgiServer, store: FakeStore) -> None:
    none = cli(server, "schema", "gamma")
    assert none.returncode == 0 and "no successful run" in none.stdout
    loaded = {
        "name": "dp_alpha",
        "tables": [
            {
                "name": "items",
                "columns": [
                    {"name": "id", "dataType": "bigint", "nullable": False, "primaryKey": True},
                    {"name": "name", "dataType": "text", "nullable": True},
                ],
            }
        ],
    }
    server.call(
        lambda: store.add_run(
            "alpha-schema",
            "alpha",
            "Succeeded",
            result={"success": True},
            runnerResult={"success": True, "loadedSchema": loaded},
            startTime="2026-12-01T07:00:00Z",
            completionTime="2026-12-01T07:00:01Z",
        )
    )
    body = as_json(cli(server, "schema", "alpha", "-o", "json"))
    assert body["run_id"] == "alpha-schema" and body["tables"][0]["name"] == "items"
    table = cli(server, "schema", "alpha")
    assert table.returncode == 0
    assert re.search(r"items +id +bigint +no +PK", table.stdout), table.stdout


def test_run_with_a_full_refresh_of_one_stream_since_a_date(
    server: AsgiServer, store: FakeStore
) -> None:
    started = as_json(
        cli(
            server,
            "run",
            "gamma",
            "--full-refresh",
            "--streams",
            "items",
            "--since",
            "2026-01-31",
            "-o",
            "json",
        )
    )
    run = server.call(lambda: store.catalog.runs[("test", started["task_id"])])
    assert (run.spec.full_refresh, run.spec.streams) == (True, ["items"])
    assert run.spec.since is not None and run.spec.since.isoformat().startswith("2026-01-31T00")
    assert "--full-refresh" in cli(None, "run", "-h", key=None).stdout
