"""The `datapipelines-runner` console script as a pod runs it: exit codes, the one-line error
and the termination-message file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.integration.runner.runnerkit import (
    duckdb_destination,
    duckdb_query,
    postgres_destination,
    rest_spec,
)


def test_cli_success_writes_the_termination_message(http_source, runner, tmp_path: Path) -> None:
    db = tmp_path / "cli.duckdb"
    manifest = {
        "apiVersion": "datapipelines.io/v1alpha1",
        "kind": "PipelineConnection",
        "metadata": {"name": "cli-items"},
        "spec": rest_spec(http_source.url, duckdb_destination(db)),
    }
    config = tmp_path / "connection.yaml"
    config.write_text(yaml.safe_dump(manifest))

    outcome = runner.run_cli(None, name=None, args=["--config", str(config)])

    assert outcome.exit_code == 0, outcome.output
    assert outcome.result["success"] is True
    assert outcome.result["rowsInserted"] == 1000
    assert duckdb_query(db, "SELECT count(*) FROM demo_data.items") == [(1000,)]
    assert "sync succeeded: 1000 rows inserted" in outcome.output
    assert "dp_cli_items" in outcome.result["report"]  # pipeline named after metadata.name


def test_cli_bad_config_exits_2(runner, tmp_path: Path) -> None:
    spec = {"type": "rest_api", "schemaName": "Bad-Name", "source": {}}
    outcome = runner.run_cli(spec)

    assert outcome.exit_code == 2
    assert outcome.result["success"] is False
    assert outcome.result["error"].startswith("bad config: invalid connection spec: ")
    assert "schemaName" in outcome.result["error"]
    last_line = outcome.output.strip().splitlines()[-1]
    assert "bad config" in last_line


@pytest.mark.postgres
def test_cli_missing_secret_exits_2(http_source, runner, postgres_server, tmp_path: Path) -> None:
    spec = rest_spec(http_source.url, postgres_destination(postgres_server, "nowhere", "absent"))
    outcome = runner.run_cli(spec)
    assert outcome.exit_code == 2
    assert outcome.result["error"].startswith("bad config: secret absent/password not found")


def test_cli_sync_failure_exits_1_with_one_line_cause(http_source, runner, tmp_path: Path) -> None:
    http_source.state.fail_from_page = 3
    outcome = runner.run_cli(rest_spec(http_source.url, duckdb_destination(tmp_path / "f.duckdb")))

    assert outcome.exit_code == 1
    error = outcome.result["error"]
    assert error.startswith("source HTTP 500: ") and "page=3" in error
    assert "\n" not in error
    assert error in outcome.output.strip().splitlines()[-1]
    assert outcome.result["report"].startswith("FAILED: source HTTP 500")


def test_cli_no_spec_at_all_exits_2(runner) -> None:
    outcome = runner.run_cli(None)
    assert outcome.exit_code == 2
    assert "DATAPIPELINES_CONNECTION_SPEC" in outcome.result["error"]


def test_termination_message_stays_under_4_kib(http_source, runner, tmp_path: Path) -> None:
    # many tables make a long report: one resource per table name
    resources = [
        {
            "name": f"items_copy_with_a_rather_long_table_name_{i:02d}",
            "endpoint": {
                "path": "items",
                "params": {"page_size": 1000},
                "paginator": "single_page",
            },
        }
        for i in range(40)
    ]
    spec = rest_spec(
        http_source.url, duckdb_destination(tmp_path / "t.duckdb"), resources=resources
    )
    outcome = runner.run_cli(spec)

    assert outcome.exit_code == 0, outcome.output
    raw = (runner.termination_log).read_bytes()
    assert len(raw) <= 4096
    result = json.loads(raw)
    assert result["reportTruncated"] is True
    assert "…[report truncated: " in result["report"]
    assert result["rowsInserted"] == 40 * 1000


def test_sigterm_cancels_and_still_reports(http_source, runner, tmp_path: Path) -> None:
    """A deleted Job's pod gets SIGTERM: the runner stops and writes a `cancelled` result."""
    import signal
    import subprocess
    import time

    from tests.integration.runner.runnerkit import RUNNER_BIN

    http_source.state.delay_ms = 300
    spec = rest_spec(http_source.url, duckdb_destination(tmp_path / "c.duckdb"))
    env = runner.environment(spec, "cancel-me", False, {})
    proc = subprocess.Popen([str(RUNNER_BIN)], env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while len(http_source.item_requests()) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)

    assert proc.returncode == 1, stderr
    result = runner.read_termination_log()
    assert result["success"] is False
    assert result["error"].startswith("cancelled: terminated by signal 15")
    assert len(http_source.item_requests()) < 10  # it stopped fetching


@pytest.mark.postgres
def test_cli_wrong_password_never_prints_it(
    http_source, runner, postgres_server, warehouse
) -> None:
    runner.secret("warehouse", "password", "Wr0ng-Passw0rd")
    spec = rest_spec(http_source.url, postgres_destination(postgres_server, warehouse))
    outcome = runner.run_cli(spec, args=["--log-format", "json"])

    assert outcome.exit_code == 1
    assert outcome.result["error"].startswith("bad credentials: postgres 127.0.0.1:")
    assert "Wr0ng-Passw0rd" not in outcome.output
    assert "Wr0ng-Passw0rd" not in json.dumps(outcome.result)
    last = json.loads(outcome.output.strip().splitlines()[-1])
    assert last["level"] == "error" and last["msg"] == outcome.result["error"]
