"""The runner keeps its own log lines with the run (status.runnerResult.log): a failed run's
log is readable after its pod is gone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from datapipelines.resources.run import KeptLog
from tests.integration.runner.runnerkit import Runner, duckdb_destination, rest_spec


def test_a_failed_runs_log_is_kept_with_its_error(
    http_source, runner: Runner, tmp_path: Path, reported: list[dict[str, Any]]
) -> None:
    http_source.state.fail_from_page = 2
    spec = rest_spec(http_source.url, duckdb_destination(tmp_path / "wh.duckdb"), retries=0)
    done = runner.run(spec, name="kept-log")
    assert done.exit_code != 0 and "log" not in done.result  # not in the termination message
    kept = KeptLog.model_validate(reported[-1]["log"])
    text = kept.text()
    assert "sync of connection kept-log" in text  # the start line
    assert done.error is not None and done.error.split(":")[0] in text.splitlines()[-1]
    assert kept.lines == len(text.splitlines()) and kept.cut_lines == 0
