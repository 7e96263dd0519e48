"""Live progress: a dlt Collector that counts per stage and table, and a reporter thread that
merge-patches `status.progress` of the run at most every `interval` seconds.

The collector only updates counters under a lock (dlt calls it for every batch of items); the
reporter thread sends a snapshot when it changed. Reporting failures are logged, never raised:
progress must never fail or slow the sync.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from dlt.common.runtime.collector import Collector

from .kube import StatusClient
from .secrets import redact

log = logging.getLogger(__name__)

STAGES = ("extract", "normalize", "load")
DLT_COUNTERS = {"Resources", "Files", "Items", "Jobs"}  # dlt's own counters, not tables


def utcnow() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ProgressCollector(Collector):
    """Counts rows per stage and table as dlt reports them."""

    def __init__(self) -> None:
        self.step = ""
        self.stage: str | None = None
        self._lock = threading.Lock()
        self._counts: dict[str, defaultdict[str, int]] = {s: defaultdict(int) for s in STAGES}
        self._jobs = {"done": 0, "total": 0}
        self.rows_loaded: dict[str, int] = {}
        self.version = 0

    def __deepcopy__(self, memo: dict[int, Any]) -> ProgressCollector:
        return self  # dlt deep-copies its collector when it re-creates a pipeline; keep ours

    def update(
        self,
        name: str,
        inc: int = 1,
        total: int | None = None,
        inc_total: int | None = None,
        message: str | None = None,
        label: str | None = None,
    ) -> None:
        stage = self.stage
        if stage is None or label:
            return
        with self._lock:
            if name == "Jobs" and stage == "load":
                self._jobs["done"] += inc
                if total is not None and not inc:
                    self._jobs["total"] = total
                if inc_total:
                    self._jobs["total"] += inc_total
            elif name not in DLT_COUNTERS and not name.startswith("_dlt"):
                self._counts[stage][name] += inc
            else:
                return
            self.version += 1

    def _start(self, step: str) -> None:
        stage = step.split(" ", 1)[0].lower()
        with self._lock:
            self.stage = stage if stage in STAGES else None
            self.version += 1

    def _stop(self) -> None:
        with self._lock:
            self.version += 1

    def set_stage(self, stage: str) -> None:
        with self._lock:
            self.stage = stage
            self.version += 1

    def counts(self) -> dict[str, dict[str, int]]:
        """Per stage (extract, normalize) and table: rows dlt has seen so far."""
        with self._lock:
            return {s: dict(c) for s, c in self._counts.items() if c and s != "load"}

    def records_extracted(self) -> int:
        with self._lock:
            return sum(self._counts["extract"].values())

    def snapshot(self, *, final: bool = False) -> dict[str, Any]:
        """`status.progress` (the shared contract's RunProgress)."""
        with self._lock:
            stage = "done" if final else (self.stage or "extract")
            source = "extract" if stage == "extract" else "normalize"
            tables = self._counts[source] or self._counts["extract"]
            body: dict[str, Any] = {
                "stage": stage,
                "recordsExtracted": sum(self._counts["extract"].values()),
                "tables": dict(tables),
                "updatedAt": utcnow(),
            }
            if self._jobs["total"]:
                body["jobsDone"] = self._jobs["done"]
                body["jobsTotal"] = self._jobs["total"]
            if self.rows_loaded:
                body["rowsLoaded"] = dict(self.rows_loaded)
            return body

    def set_rows_loaded(self, rows: dict[str, int]) -> None:
        with self._lock:
            self.rows_loaded = dict(rows)
            self.version += 1

    def reset(self) -> None:
        """Forgets the counts (a new attempt after a rolled-back one)."""
        with self._lock:
            self._counts = {s: defaultdict(int) for s in STAGES}
            self._jobs = {"done": 0, "total": 0}
            self.rows_loaded = {}
            self.stage = None
            self.version += 1


class ProgressReporter:
    """Sends the collector's snapshot to the apiserver every `interval` s while it changes."""

    def __init__(
        self,
        collector: ProgressCollector,
        client: StatusClient | None,
        interval: float = 2.0,
        log_interval: float = 10.0,
    ) -> None:
        self.collector = collector
        self.client = client
        self.interval = interval
        self.log_interval = log_interval
        self._stop = threading.Event()
        self._sent_version = -1
        self._logged_at = 0.0
        self._failures = 0
        self.patches_sent = 0
        self._thread = threading.Thread(target=self._loop, name="progress", daemon=True)

    def start(self) -> ProgressReporter:
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.send_if_changed()

    def send_if_changed(self) -> None:
        version = self.collector.version
        if version == self._sent_version:
            return
        self._sent_version = version
        progress = self.collector.snapshot()
        now = time.monotonic()
        if now - self._logged_at >= self.log_interval:
            self._logged_at = now
            log.info(
                "progress: stage %s, %d records extracted, tables %s",
                progress["stage"],
                progress["recordsExtracted"],
                progress["tables"],
            )
        if self.client is not None:
            self._patch({"progress": progress})

    def _patch(self, status: dict[str, Any]) -> bool:
        assert self.client is not None
        try:
            self.client.patch_status(status)
            self.patches_sent += 1
            return True
        except Exception as exc:  # never let reporting break the sync
            self._failures += 1
            level = logging.WARNING if self._failures <= 3 else logging.DEBUG
            log.log(level, "status patch failed (the sync goes on): %s", redact(str(exc)))
            return False

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.client.timeout + 1 if self.client else 1)

    def finish(self, result: dict[str, Any], attempts: int = 3) -> bool:
        """Stops the thread and patches the final progress and result; True if it reached the
        apiserver (False without a client)."""
        self.stop()
        if self.client is None:
            return False
        status = {"progress": self.collector.snapshot(final=True), "runnerResult": result}
        for attempt in range(attempts):
            if self._patch(status):
                return True
            time.sleep(0.5 * (attempt + 1))
        return False
