"""Console scripts of this project run by the tests as child processes, and free ports.

    op = OperatorProcess(ns).start()          # datapipelines-operator watching `ns`
    op.kill(); op.start()                     # a crash and a restart
    print(op.logs())                          # the output of every start
    op.stop()

Each start writes its output to its own file `<name>-<start>.log` in `log_dir`
(default .cluster/test-logs/). The child gets the test's environment without any
`DATAPIPELINES_*` or `KUBECONFIG` variable, plus the ones it is given.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Self

from tests.support.cluster import API_SERVER, KUBECONFIG, RUNNER_IMAGE
from tests.support.tools import REPO_ROOT
from tests.support.waiting import wait_until

BIN = Path(sys.executable).parent
#: An image that does not exist and is never pulled: its pods wait, the run stays Running.
NEVER_PULLED_REPO = "localhost/datapipelines-never-pulled"
LOG_DIR = REPO_ROOT / ".cluster" / "test-logs"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Process:
    """A console script of the venv (`script`) as a child process; restartable."""

    def __init__(self, script: str, name: str, env: dict[str, str], log_dir: Path = LOG_DIR):
        self.script, self.name, self.env, self.log_dir = script, name, env, log_dir
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def environment(self) -> dict[str, str]:
        """The variables this start adds to the test's cleaned environment."""
        return self.env

    def _log_file(self, start: int) -> Path:
        return self.log_dir / f"{self.name}-{start}.log"

    @property
    def log_path(self) -> Path:
        return self._log_file(self.starts)

    def start(self) -> Self:
        self.starts += 1
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("DATAPIPELINES_", "KUBECONFIG"))
        }
        env.update(self.environment())
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [str(BIN / self.script)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.log_dir,
            )
        return self

    def kill(self) -> None:
        """SIGKILL: no clean shutdown (a crash)."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 20 s."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def logs(self) -> str:
        """The output of every start so far, each after a `--- <name> start #<n> ---` line."""
        out = []
        for i in range(1, self.starts + 1):
            path = self._log_file(i)
            if path.exists():
                text = path.read_text(errors="replace")
                out.append(f"--- {self.name} start #{i} ---\n{text}")
        return "\n".join(out)

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.logs().splitlines()[-lines:])


class OperatorProcess(Process):
    """``datapipelines-operator`` watching one namespace of the local cluster.

    Runner pods use the locally imported runner image (never pulled) on the host network and
    report to the apiserver at 127.0.0.1; no health or metrics port; short sync and lease
    intervals, Normal events on. ``env`` adds or overrides variables; ``POD_NAME`` (the Lease
    identity, otherwise ``test-operator-<start>``) also names the log files.
    """

    def __init__(
        self,
        namespace: str,
        *,
        kubeconfig: Path = KUBECONFIG,
        log_dir: Path = LOG_DIR,
        **env: str,
    ) -> None:
        self.namespace = namespace
        self.tag = env.get("POD_NAME", "operator")
        base = {
            "DATAPIPELINES_NAMESPACE": namespace,
            "DATAPIPELINES_KUBECONFIG": str(kubeconfig),
            # kubernetes_asyncio reads KUBECONFIG at import time: kopf's login needs it set.
            "KUBECONFIG": str(kubeconfig),
            "DATAPIPELINES_RUNNER_IMAGE": RUNNER_IMAGE,
            "DATAPIPELINES_RUNNER_IMAGE_PULL_POLICY": "Never",
            "DATAPIPELINES_RUNNER_HOST_NETWORK": "true",
            "DATAPIPELINES_KUBE_API": API_SERVER,
            "DATAPIPELINES_HEALTH_PORT": "0",
            "DATAPIPELINES_METRICS_PORT": "0",
            "DATAPIPELINES_LOG_FORMAT": "text",
            "DATAPIPELINES_SYNC_INTERVAL_SECONDS": "5",
            "DATAPIPELINES_LEASE_DURATION_SECONDS": "6",
            "DATAPIPELINES_RENEW_DEADLINE_SECONDS": "4",
            "DATAPIPELINES_RETRY_PERIOD_SECONDS": "1",
            "DATAPIPELINES_EVENTS": "all",
            # images the tests name on purpose (one that is never pulled keeps a run Running)
            "DATAPIPELINES_SANDBOX_IMAGES": NEVER_PULLED_REPO,
        }
        super().__init__(
            "datapipelines-operator", f"operator-{namespace}-{self.tag}", {**base, **env}, log_dir
        )

    def environment(self) -> dict[str, str]:
        return {"POD_NAME": f"test-{self.tag}-{self.starts}", **self.env}

    def current_log(self) -> str:
        path = self.log_path
        return path.read_text(errors="replace") if path.exists() else ""

    async def in_sync(self, seconds: float = 60) -> None:
        """Wait until this start has reconciled everything it saw at start-up."""
        await wait_until(
            lambda: _async(IN_SYNC in self.current_log()), seconds, what="operator in sync"
        )

    async def leading(self, seconds: float = 60) -> None:
        """Wait until this start holds the Lease."""
        await wait_until(
            lambda: _async("holds Lease" in self.current_log()), seconds, what="Lease held"
        )


#: The line the operator logs once everything it saw at start-up is reconciled.
IN_SYNC = "in sync: every object seen at start-up is reconciled"


async def _async(value: bool) -> bool:
    return value
