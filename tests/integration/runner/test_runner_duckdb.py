"""DuckDB specifics: the default destination (the warehouse volume) and DuckDB's one writer."""

from __future__ import annotations

import subprocess
import sys

from tests.integration.runner.runnerkit import Runner, duckdb_destination, duckdb_query, rest_spec


def test_no_destination_loads_into_the_warehouse_file(
    http_source, runner: Runner, tmp_path
) -> None:
    """`<data dir>/warehouse/warehouse.duckdb` (in a pod: the chart's PersistentVolumeClaim at
    /var/lib/datapipelines/warehouse): a later run, in a new pod, continues from its state."""
    runner.warehouse = tmp_path / "pvc"
    spec = rest_spec(http_source.url, {})
    spec.pop("destination")

    first = runner.run(spec, name="default-dest")
    assert first.exit_code == 0, first.error
    db = runner.warehouse / "warehouse.duckdb"
    assert f"duckdb {runner.data_dir / 'warehouse' / 'warehouse.duckdb'}" in first.result["report"]
    assert duckdb_query(db, "SELECT count(*) FROM demo_data.items") == [(1000,)]

    http_source.state.records = 1200
    second = runner.run(spec, name="default-dest")  # a fresh data dir, the same volume
    assert second.exit_code == 0, second.error
    assert second.result["rowsInserted"] == 200
    assert duckdb_query(db, "SELECT count(*), count(DISTINCT id) FROM demo_data.items") == [
        (1200, 1200)
    ]


def test_a_locked_duckdb_file_is_named_in_one_line(http_source, runner: Runner, tmp_path) -> None:
    db = tmp_path / "busy" / "warehouse.duckdb"
    db.parent.mkdir()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('held', flush=True);"
            " time.sleep(120)",
            str(db),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        outcome = runner.run(rest_spec(http_source.url, duckdb_destination(db)), name="busy")
    finally:
        holder.kill()
        holder.wait(timeout=30)

    assert outcome.exit_code == 1  # retryable: the Job tries again later
    error = outcome.error
    assert error.startswith(f"destination busy: another process holds the DuckDB file {db} (")
    assert f"PID {holder.pid}" in error
    assert "DuckDB allows one writing process per file" in error
    assert "\n" not in error
    assert "attempts: 4" in outcome.result["report"]  # retried after pauses, then gave up
    assert http_source.item_requests() == []  # nothing was fetched
