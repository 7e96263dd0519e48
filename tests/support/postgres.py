"""A real PostgreSQL (Debian's `postgresql` package) for tests, on 127.0.0.1 and a free port.

    def test_x(postgres_server):            # one server for the session
        db = postgres_server.create_database()   # a fresh database per test
        with postgres_server.connect(db) as conn: ...

`PostgresServer` can also be started on its own (a disposable server a test may stop, e.g. to
make a destination go away). Password authentication (scram) over TCP: `user`/`password`.
The server is started or the test errors: it never skips. Runs initdb/postgres as the
`postgres` user when the tests run as root (initdb refuses root).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support.processes import free_port

__all__ = ["PostgresServer", "postgres_server"]

PG_VERSIONS = ("17", "16", "15")
SUPERUSER = "postgres"
PASSWORD = "test-secret-pw"


def pg_bin_dir() -> Path:
    """Debian's PostgreSQL binaries; installs the package (as root) when missing."""
    for attempt in range(2):
        for version in PG_VERSIONS:
            candidate = Path(f"/usr/lib/postgresql/{version}/bin")
            if (candidate / "initdb").exists():
                return candidate
        if attempt == 0 and os.geteuid() == 0 and shutil.which("apt-get"):
            env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
            subprocess.run(["apt-get", "install", "-y", "-q", "postgresql"], env=env, check=False)
    raise RuntimeError("PostgreSQL binaries not found: apt-get install -y postgresql")


RUNUSER = shutil.which("runuser") or shutil.which("runuser", path="/usr/sbin:/sbin") or "runuser"


def _as_postgres(cmd: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return cmd
    return [RUNUSER, "-u", "postgres", "--", *cmd]


@dataclass
class PostgresServer:
    """One postgres process in its own temp directory."""

    port: int = field(default_factory=free_port)
    host: str = "127.0.0.1"
    user: str = SUPERUSER
    password: str = PASSWORD
    database: str = "postgres"
    root: Path | None = None
    bin_dir: Path = field(default_factory=pg_bin_dir)

    @property
    def datadir(self) -> Path:
        assert self.root is not None
        return self.root / "data"

    def _run(self, cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            _as_postgres(cmd), capture_output=True, text=True, check=True, timeout=120, **kw
        )

    def init(self) -> PostgresServer:
        self.root = Path(tempfile.mkdtemp(prefix="dp-pg-"))
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.password + "\n")
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
            shutil.chown(pwfile, "postgres", "postgres")
        os.chmod(self.root, 0o700)
        self._run(
            [
                str(self.bin_dir / "initdb"),
                "-D",
                str(self.datadir),
                "-U",
                self.user,
                f"--pwfile={pwfile}",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ]
        )
        return self

    def start(self) -> PostgresServer:
        if self.root is None:
            self.init()
        opts = (
            f"-c listen_addresses={self.host} -p {self.port} -k {self.root} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c shared_buffers=32MB -c max_connections=60"
        )
        try:
            self._run(
                [
                    str(self.bin_dir / "pg_ctl"),
                    "-D",
                    str(self.datadir),
                    "-o",
                    opts,
                    "-l",
                    str(self.root / "postgres.log"),
                    "-w",
                    "-t",
                    "60",
                    "start",
                ]
            )
        except subprocess.CalledProcessError as exc:
            log = self.log_tail()
            raise RuntimeError(f"postgres did not start: {exc.stderr}\n{log}") from None
        return self

    def stop(self, mode: str = "fast") -> None:
        if self.root is None or not (self.datadir / "postmaster.pid").exists():
            return
        with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
            self._run(
                [str(self.bin_dir / "pg_ctl"), "-D", str(self.datadir), "-m", mode, "-w", "stop"]
            )

    def destroy(self) -> None:
        self.stop("immediate")
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def log_tail(self, lines: int = 20) -> str:
        if self.root is None:
            return ""
        log = self.root / "postgres.log"
        return (
            "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else ""
        )

    # --- client side ---------------------------------------------------------------------

    def params(self, database: str | None = None) -> dict[str, Any]:
        return {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "dbname": database or self.database,
        }

    def dsn(self, database: str | None = None) -> str:
        return (
            f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/"
            f"{database or self.database}"
        )

    def connect(self, database: str | None = None) -> Any:
        """A psycopg2 connection (autocommit)."""
        import psycopg2

        conn = psycopg2.connect(**self.params(database))
        conn.autocommit = True
        return conn

    def query(self, sql: str, *args: Any, database: str | None = None) -> list[tuple[Any, ...]]:
        conn = self.connect(database)
        try:
            with conn.cursor() as cur:
                cur.execute(sql, args or None)
                return cur.fetchall() if cur.description else []
        finally:
            conn.close()

    def create_database(self, name: str | None = None) -> str:
        name = name or f"t_{uuid.uuid4().hex[:10]}"
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()
        return name

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.connect().close()
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the whole session; stopped and removed at the end."""
    server = PostgresServer().start()
    try:
        server.wait_ready()
        yield server
    finally:
        server.destroy()
