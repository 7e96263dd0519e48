"""Helpers for the runner's integration tests: run the real runner (in-process through
`main()`, or as the `datapipelines-runner` subprocess) against the demo HTTP source, a real
PostgreSQL (tests/support/postgres.py) and DuckDB files, and read back what it reported."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datapipelines.runner import secrets
from datapipelines.runner.main import main

REPO = Path(__file__).resolve().parents[3]
RUNNER_BIN = Path(sys.executable).parent / "datapipelines-runner"

# fail fast in tests: 2 attempts, short back-off (dlt's default is 5 attempts, ~16 s)
FAST_RETRIES = {
    "RUNTIME__REQUEST_MAX_ATTEMPTS": "2",
    "RUNTIME__REQUEST_BACKOFF_FACTOR": "0.1",
    # the runner's own retries of a lost destination: short pauses (default 2, 5, 10 s)
    "DATAPIPELINES_RETRY_DELAYS": "0.2,0.5,1",
}


@dataclass
class Outcome:
    exit_code: int
    result: dict[str, Any]
    output: str = ""

    @property
    def error(self) -> str | None:
        return self.result.get("error")


def rest_resource(page_size: int = 100, incremental: bool = True, path: str = "items") -> dict:
    resource: dict[str, Any] = {
        "name": "items",
        "endpoint": {
            "path": path,
            "params": {"page_size": page_size},
            "paginator": {"type": "page_number", "base_page": 1, "total_path": "total_pages"},
        },
        "primary_key": "id",
    }
    if incremental:
        resource["incremental"] = {
            "cursor_path": "updated_at",
            "initial_value": "1970-01-01T00:00:00Z",
            "start_param": "updated_since",
        }
    return resource


def rest_spec(url: str, destination: dict, schema: str = "demo_data", **kw: Any) -> dict:
    resources = kw.pop("resources", None) or [rest_resource()]
    source: dict[str, Any] = {"baseUrl": url, "resources": resources}
    if "auth" in kw:
        source["auth"] = kw.pop("auth")
    return {
        "type": "rest_api",
        "schemaName": schema,
        "writeDisposition": kw.pop("write_disposition", "append"),
        "source": {"restApi": source},
        "destination": destination,
        **kw,
    }


def duckdb_destination(path: Path) -> dict:
    return {"type": "duckdb", "duckdb": {"path": str(path)}}


def postgres_destination(server: Any, database: str, secret: str = "warehouse") -> dict:
    return {
        "type": "postgres",
        "postgres": {
            "host": server.host,
            "port": server.port,
            "database": database,
            "username": server.user,
            "passwordSecretRef": {"name": secret, "key": "password"},
            "sslMode": "disable",
            "connectTimeoutSeconds": 3,
        },
    }


def duckdb_query(path: Path, sql: str) -> list[tuple]:
    import duckdb

    with duckdb.connect(str(path), read_only=True) as conn:
        return conn.execute(sql).fetchall()


#: `python -c` code: the runner, killed with SIGKILL right after dlt loaded the package and
#: before it counted, journaled or reported anything (a pod evicted at the worst moment)
KILL_AFTER_LOAD = """
import os, signal, sys
from datapipelines.runner import sync
def killed(self, load_ids):
    os.kill(os.getpid(), signal.SIGKILL)
sync.SyncAttempt._count_and_finish = killed
from datapipelines.runner.main import main
sys.exit(main())
"""

#: `python -c` code: the runner, killed with SIGKILL once every job of the package is loaded
#: but before dlt records the package as complete (`_dlt_loads`): a load cut at its last step
KILL_BEFORE_COMPLETE = """
import os, signal, sys
from dlt.load.load import Load
def killed(self, load_id, schema, aborted=False):
    os.kill(os.getpid(), signal.SIGKILL)
Load.complete_package = killed
from datapipelines.runner.main import main
sys.exit(main())
"""


class Runner:
    """Runs the runner like a pod would: spec and settings in the environment, a fresh data
    dir (emptyDir) per run unless `keep_data_dir`. With `warehouse` set, `<data dir>/warehouse`
    is that one directory for every run (the chart's PersistentVolumeClaim)."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.secrets_dir = base / "secrets"
        self.secrets_dir.mkdir()
        self.termination_log = base / "termination-log"
        self._runs = itertools.count(1)
        self.data_dir = base / "data-0"
        self.warehouse: Path | None = None

    def secret(self, name: str, key: str, value: str) -> None:
        (self.secrets_dir / name).mkdir(exist_ok=True)
        (self.secrets_dir / name / key).write_text(value + "\n")

    def environment(self, spec: dict, name: str | None, keep_data_dir: bool, extra: dict) -> dict:
        if not keep_data_dir:
            self.data_dir = self.base / f"data-{next(self._runs)}"
        if self.warehouse is not None and not (self.data_dir / "warehouse").exists():
            self.warehouse.mkdir(parents=True, exist_ok=True)
            self.data_dir.mkdir(parents=True, exist_ok=True)
            (self.data_dir / "warehouse").symlink_to(self.warehouse)
        env = {k: v for k, v in os.environ.items() if not k.startswith("DATAPIPELINES_")}
        env.update(FAST_RETRIES)
        env.update(
            DATAPIPELINES_CONNECTION_SPEC=json.dumps(spec),
            DATAPIPELINES_NAMESPACE="test",
            DATAPIPELINES_DATA_DIR=str(self.data_dir),
            DATAPIPELINES_SECRETS_DIR=str(self.secrets_dir),
            DATAPIPELINES_TERMINATION_LOG=str(self.termination_log),
            DATAPIPELINES_LOG_FORMAT="text",
        )
        if name:
            env["DATAPIPELINES_CONNECTION_NAME"] = name
        env.update(extra)
        return env

    def run(
        self, spec: dict, name: str = "conn", keep_data_dir: bool = False, **extra: str
    ) -> Outcome:
        """In-process: `main()` with the pod's environment; os.environ restored after."""
        saved = dict(os.environ)
        self.termination_log.unlink(missing_ok=True)
        try:
            os.environ.clear()
            os.environ.update(self.environment(spec, name, keep_data_dir, extra))
            code = main([])
        finally:
            os.environ.clear()
            os.environ.update(saved)
            secrets.set_secrets_dir(None)
        return Outcome(code, self.read_termination_log())

    def run_cli(
        self,
        spec: dict | None,
        name: str | None = "conn",
        args: list[str] | None = None,
        **extra: str,
    ) -> Outcome:
        """As a subprocess: the `datapipelines-runner` console script."""
        self.termination_log.unlink(missing_ok=True)
        env = self.environment(spec or {}, name, False, extra)
        if spec is None:
            env.pop("DATAPIPELINES_CONNECTION_SPEC")
        proc = subprocess.run(
            [*self.command(), *(args or [])],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
        )
        return Outcome(proc.returncode, self.read_termination_log(), proc.stdout + proc.stderr)

    def command(self) -> list[str]:
        if RUNNER_BIN.exists():
            return [str(RUNNER_BIN)]
        return [sys.executable, "-m", "datapipelines.runner.main"]

    def start_cli(self, spec: dict, name: str = "conn", **extra: str) -> subprocess.Popen:
        """The console script, not waited for (to kill it)."""
        self.termination_log.unlink(missing_ok=True)
        env = self.environment(spec, name, False, extra)
        return subprocess.Popen(
            self.command(), env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )

    def run_code(self, code: str, spec: dict, name: str = "conn", **extra: str) -> Outcome:
        """`python -c code` with the pod's environment (e.g. KILL_AFTER_LOAD)."""
        self.termination_log.unlink(missing_ok=True)
        env = self.environment(spec, name, False, extra)
        proc = subprocess.run(
            [sys.executable, "-c", code],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
        )
        return Outcome(proc.returncode, self.read_termination_log(), proc.stdout + proc.stderr)

    def read_termination_log(self) -> dict[str, Any]:
        if not self.termination_log.exists():
            return {}
        raw = self.termination_log.read_bytes()
        assert len(raw) <= 4096
        return json.loads(raw)


def query(destination: dict[str, Any], request: Any, sql: str) -> list[tuple]:
    """`sql` on the test's destination (the `destination` fixture: DuckDB or PostgreSQL)."""
    if destination["type"] == "duckdb":
        return duckdb_query(Path(destination["duckdb"]["path"]), sql)
    server = request.getfixturevalue("postgres_server")
    return server.query(sql, database=destination["postgres"]["database"])
