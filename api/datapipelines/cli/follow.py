"""Following a task until it ends, by polling `GET /task_status/{id}` (the CLI only has REST).

On a terminal the state is a live display (rich); otherwise one line per change, for logs.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.spinner import Spinner
from rich.table import Table

from datapipelines.cli import render
from datapipelines.cli.client import EXIT_CANCELLED, EXIT_FAILED

Status = dict[str, Any]


class RunView:
    """A run's live state: a header line and, per table, records extracted, rows loaded and
    the stage it was last seen in (from the `progress` of the task status)."""

    def __init__(self, task_id: str) -> None:
        self.task_id = task_id
        self.status: Status = {}
        self.tables: dict[str, dict[str, Any]] = {}
        self._started = time.monotonic()

    def update(self, status: Status) -> None:
        self.status = status
        progress = status.get("progress") or {}
        stage = progress.get("stage")
        for name, count in (progress.get("tables") or {}).items():
            row = self.tables.setdefault(name, {"extracted": None, "loaded": None, "stage": None})
            if stage == "extract":
                row["extracted"] = count
            elif stage == "load":
                row["loaded"] = count
            row["stage"] = stage

    def header(self) -> str:
        s = self.status
        progress = s.get("progress") or {}
        parts = [
            self.task_id,
            str(s.get("phase") or s.get("status") or "…"),
            f"stage {progress.get('stage') or '-'}",
        ]
        if progress.get("records_extracted") is not None:
            parts.append(f"{render.cell(progress['records_extracted'])} records extracted")
        if s.get("attempts"):
            parts.append(f"attempt {s['attempts']}")
        parts.append(f"{time.monotonic() - self._started:.0f} s")
        return "  ".join(parts)

    def table(self) -> Table:
        t = render.table("TABLE", "RECORDS EXTRACTED", "ROWS LOADED", "STAGE")
        for name in sorted(self.tables):
            row = self.tables[name]
            t.add_row(
                name, render.cell(row["extracted"]), render.cell(row["loaded"]), row["stage"] or "-"
            )
        return t

    def __rich__(self) -> RenderableType:
        return Group(Spinner("dots", text=self.header()), self.table())


class BatchView:
    """A batch's live state: one line per connection (its run, phase and outcome)."""

    def __init__(self, task_id: str) -> None:
        self.task_id = task_id
        self.status: Status = {}

    def update(self, status: Status) -> None:
        self.status = status

    def __rich__(self) -> RenderableType:
        s = self.status
        done = len(s.get("completed") or [])
        total = len(s.get("connections") or [])
        text = f"{self.task_id}  {s.get('status', '…')}  {done}/{total} done"
        if s.get("current"):
            text += f"  current {s['current']}"
        runs: Table = render.batch_runs(batch_rows(s))
        return Group(Spinner("dots", text=text), runs)


def batch_rows(status: Status) -> list[dict[str, Any]]:
    """Every connection of the batch, with its run once it has one."""
    runs = {r.get("connection"): r for r in status.get("runs") or []}
    return [runs.get(c) or {"connection": c} for c in status.get("connections") or []]


def follow(
    poll: Callable[[], Status],
    view: RunView | BatchView,
    *,
    console: Console,
    log: Console,
    live: bool,
    interval: float,
    lines: Callable[[Status], list[str]],
) -> Status:
    """Poll until the task is no longer active; returns its last status. Ctrl-C always ends
    the wait (KeyboardInterrupt): it is also remembered, so a library that swallows the
    interrupt (a live display's thread, an HTTP client) cannot keep the loop going."""
    printed: set[str] = set()
    stop = threading.Event()

    def interrupted(signum: int, frame: Any) -> None:
        stop.set()
        raise KeyboardInterrupt

    def step() -> Status:
        status = poll()
        view.update(status)
        if not live:
            for line in lines(status):
                if line not in printed:
                    printed.add(line)
                    log.print(line, markup=False, highlight=False, soft_wrap=True)
        if stop.is_set():
            raise KeyboardInterrupt
        return status

    def loop() -> Status:
        status = step()
        while status.get("active", False):
            if stop.wait(interval):
                raise KeyboardInterrupt
            status = step()
        return status

    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, interrupted) if main else None
    try:
        if not live:
            return loop()
        with Live(view, console=console, refresh_per_second=8, transient=True):
            status = loop()
        return status
    finally:
        if main:
            signal.signal(signal.SIGINT, previous)


def run_lines(status: Status) -> list[str]:
    return [render.run_line(status)]


def batch_lines(status: Status) -> list[str]:
    out = []
    for r in batch_rows(status):
        if r.get("run_id"):
            out.append(f"{r['connection']}: {r['run_id']} {r.get('phase') or 'Pending'}")
    return out


def run_exit_code(status: Status) -> int:
    result = status.get("result") or {}
    if status.get("status") == "cancelled" or result.get("status") == "cancelled":
        return EXIT_CANCELLED
    return 0 if result.get("success") else EXIT_FAILED


def batch_exit_code(status: Status) -> int:
    if status.get("status") == "cancelled":
        return EXIT_CANCELLED
    if any(r.get("success") is False for r in status.get("runs") or []):
        return EXIT_FAILED
    return 0


TERMINAL_PHASES = ("Succeeded", "Failed", "Cancelled")


def new_lines(seen: list[str], fetched: list[str]) -> tuple[list[str], bool]:
    """The lines of `fetched` (a window on the end of a log) after those already printed
    (`seen`: the last printed lines), and whether some may have been missed (the window no
    longer reaches back to what was printed)."""
    if not seen:
        return fetched, False
    last = seen[-1]
    for i in range(len(fetched) - 1, -1, -1):  # the newest place the printed lines end
        if fetched[i] != last:
            continue
        k = min(i + 1, len(seen))
        if fetched[i - k + 1 : i + 1] == seen[-k:]:
            return fetched[i + 1 :], False
    return fetched, True


def follow_log(
    fetch: Callable[[], Status],
    write: Callable[[str], None],
    note: Callable[[str], None],
    *,
    interval: float,
    sleep: Callable[[float], None] = time.sleep,
) -> Status:
    """Prints a run's log as it grows until the run ends (`logs -f`); the last body fetched.

    Each poll reads a window on the end of the log (`fetch`); lines already printed are not
    printed again; a new pod (the Job's next attempt) starts a new section."""
    seen: list[str] = []
    pod: str | None = None
    while True:
        body = fetch()
        if body.get("source") == "pod":
            if body.get("pod") != pod:
                if pod is not None:
                    note(f"# next attempt: log of pod {body.get('pod')}")
                pod, seen = body.get("pod"), []
            lines = str(body.get("text") or "").splitlines()
            fresh, gap = new_lines(seen, lines)
            if gap:
                note("# (lines were skipped: the log grew faster than it was read)")
            for line in fresh:
                write(line + "\n")
            seen = (seen + fresh)[-200:]
        elif body.get("source") in ("stored", "report") and pod is None:
            what = "its kept log" if body["source"] == "stored" else "its report"
            note(f"# the run's pod is gone: {what}")
            write(str(body.get("text") or "").rstrip("\n") + "\n")
            return body
        if body.get("phase") in TERMINAL_PHASES:
            return body
        sleep(interval)
