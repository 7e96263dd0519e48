"""Destination failures: wrong password, nothing listening, PostgreSQL going away mid-run.
Each names its cause, and what earlier runs committed stays."""

from __future__ import annotations

import threading
import time

import pytest

from tests.integration.runner.runnerkit import postgres_destination, rest_spec
from tests.support.postgres import PostgresServer
from tests.support.processes import free_port

pytestmark = pytest.mark.postgres


def test_wrong_postgres_password_is_bad_credentials(
    http_source, runner, postgres_server, warehouse
) -> None:
    runner.secret("warehouse", "password", "not-the-password")
    outcome = runner.run(
        rest_spec(http_source.url, postgres_destination(postgres_server, warehouse))
    )

    assert outcome.exit_code == 1
    assert outcome.error.startswith("bad credentials: postgres 127.0.0.1:")
    assert "password authentication failed" in outcome.error
    assert "not-the-password" not in outcome.result["report"]
    assert http_source.item_requests() == []  # refused before anything was fetched


def test_nothing_listening_is_destination_unreachable(http_source, runner) -> None:
    class Nowhere:
        host, port, user = "127.0.0.1", free_port(), "loader"

    runner.secret("warehouse", "password", "whatever")
    outcome = runner.run(rest_spec(http_source.url, postgres_destination(Nowhere, "warehouse")))

    assert outcome.exit_code == 1
    assert outcome.error.startswith(f"destination unreachable: postgres 127.0.0.1:{Nowhere.port}")
    assert "refused" in outcome.error.lower()


def test_postgres_stopped_mid_run_keeps_committed_rows(http_source, runner) -> None:
    server = PostgresServer().start()
    try:
        server.wait_ready()
        database = server.create_database("warehouse")
        runner.secret("warehouse", "password", server.password)
        spec = rest_spec(http_source.url, postgres_destination(server, database))
        http_source.state.records = 500

        first = runner.run(spec, name="goes-away", keep_data_dir=True)
        assert first.result["rowsInserted"] == 500

        # a slow second run; the server stops while it extracts
        http_source.state.records = 1500
        http_source.state.delay_ms = 150
        seen = len(http_source.item_requests())

        def stop_when_extracting() -> None:
            deadline = time.monotonic() + 30
            while len(http_source.item_requests()) < seen + 3 and time.monotonic() < deadline:
                time.sleep(0.02)
            server.stop("fast")

        stopper = threading.Thread(target=stop_when_extracting)
        stopper.start()
        failed = runner.run(spec, name="goes-away", keep_data_dir=True)
        stopper.join()

        # extracted, never loaded: the runner retried the destination 3 times, then gave up
        assert failed.exit_code == 1
        assert failed.error.startswith("destination unreachable: postgres 127.0.0.1:")
        assert (
            "attempts: 4 (a lost destination is retried after a pause)" in (failed.result["report"])
        )

        server.start()
        server.wait_ready()
        assert server.query("SELECT count(*) FROM demo_data.items", database=database) == [(500,)]

        # same data dir: the cursor comes back from the destination and the 1000 records are
        # fetched and loaded again
        http_source.state.delay_ms = 0
        healed = runner.run(spec, name="goes-away", keep_data_dir=True)
        assert healed.exit_code == 0, healed.error
        assert healed.result["rowsInserted"] == 1000
        rows = server.query(
            "SELECT count(*), count(DISTINCT id) FROM demo_data.items", database=database
        )
        assert rows == [(1500, 1500)]
    finally:
        server.destroy()
