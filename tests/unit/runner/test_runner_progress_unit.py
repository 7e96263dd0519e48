"""The progress collector counts per stage and table; the reporter throttles and never raises."""

from __future__ import annotations

import time

from datapipelines.runner.progress import ProgressCollector, ProgressReporter


def feed(collector: ProgressCollector) -> None:
    with collector("Extract demo"):
        collector.update("Resources", 0, 1)
        collector.update("items", 100)
        collector.update("items", 50)
        collector.update("users", 7)
        collector.update("_dlt_pipeline_state", 1)
    with collector("Normalize demo in 123"):
        collector.update("Files", 0, 2)
        collector.update("items", 150)
    with collector("Load demo in 123"):
        collector.update("Jobs", 0, 2)
        collector.update("Jobs")


def test_counts_per_stage_and_table() -> None:
    collector = ProgressCollector()
    feed(collector)
    assert collector.counts() == {
        "extract": {"items": 150, "users": 7},
        "normalize": {"items": 150},
    }
    assert collector.records_extracted() == 157
    snap = collector.snapshot()
    assert snap["stage"] == "load"
    assert snap["recordsExtracted"] == 157
    assert snap["tables"] == {"items": 150}
    assert snap["updatedAt"].endswith("Z")


def test_collector_survives_deepcopy() -> None:
    import copy

    collector = ProgressCollector()
    assert copy.deepcopy(collector) is collector


class Client:
    timeout = 1.0

    def __init__(self, fail: bool = False) -> None:
        self.sent: list[dict] = []
        self.fail = fail

    def patch_status(self, status: dict) -> None:
        self.sent.append(status)
        if self.fail:
            raise RuntimeError("apiserver says no")


def test_reporter_sends_only_changes_and_at_most_every_interval() -> None:
    collector = ProgressCollector()
    client = Client()
    reporter = ProgressReporter(collector, client, interval=0.2).start()  # type: ignore[arg-type]
    with collector("Extract demo"):
        for _ in range(50):
            collector.update("items", 10)
            time.sleep(0.01)
    time.sleep(0.5)
    reporter.finish({"success": True})
    progress = [s for s in client.sent if "runnerResult" not in s]
    assert 1 <= len(progress) <= 5  # ~0.5 s of updates, at most one patch per 0.2 s
    assert client.sent[-1]["runnerResult"] == {"success": True}
    assert client.sent[-1]["progress"]["recordsExtracted"] == 500


def test_reporter_failures_never_raise() -> None:
    collector = ProgressCollector()
    reporter = ProgressReporter(collector, Client(fail=True), interval=0.05).start()  # type: ignore[arg-type]
    with collector("Extract demo"):
        collector.update("items", 1)
    time.sleep(0.2)
    assert reporter.finish({"success": True}, attempts=1) is False


def test_no_client_no_patches() -> None:
    reporter = ProgressReporter(ProgressCollector(), None, interval=0.05).start()
    assert reporter.finish({"success": True}) is False
