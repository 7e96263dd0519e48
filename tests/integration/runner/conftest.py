"""Fixtures of the runner's integration tests (helpers: runnerkit.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.integration.runner.runnerkit import Runner, duckdb_destination, postgres_destination


@pytest.fixture
def runner(tmp_path: Path) -> Runner:
    return Runner(tmp_path)


@pytest.fixture
def warehouse(postgres_server: Any, runner: Runner) -> str:
    """A fresh PostgreSQL database for the test, its password as Secret `warehouse/password`."""
    runner.secret("warehouse", "password", postgres_server.password)
    return postgres_server.create_database()


@pytest.fixture
def pg_count(postgres_server: Any, warehouse: str):
    def count(sql: str = "SELECT count(*), count(DISTINCT id) FROM demo_data.items") -> tuple:
        return postgres_server.query(sql, database=warehouse)[0]

    return count


@pytest.fixture
def reported(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every final report the runner sends to the apiserver (status.runnerResult), whole: the
    termination message leaves the loaded schema and the kept log out."""
    from datapipelines.runner import progress

    sent: list[dict[str, Any]] = []
    original = progress.ProgressReporter.finish

    def keep(self: progress.ProgressReporter, result: dict[str, Any], attempts: int = 3) -> bool:
        sent.append(result)
        return original(self, result, attempts)

    monkeypatch.setattr(progress.ProgressReporter, "finish", keep)
    return sent


@pytest.fixture(params=["duckdb", "postgres"])  # each test that asks for it runs on both
def destination(request: Any, tmp_path: Path) -> dict[str, Any]:
    if request.param == "duckdb":
        return duckdb_destination(tmp_path / "wh" / "contracts.duckdb")
    server = request.getfixturevalue("postgres_server")
    runner = request.getfixturevalue("runner")
    runner.secret("warehouse", "password", server.password)
    return postgres_destination(server, server.create_database())
