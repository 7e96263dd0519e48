"""The result contract: camelCase keys, a termination message of at most 4 KiB, explicit cuts."""

from __future__ import annotations

import json

import pytest

from datapipelines.runner.result import (
    RunResult,
    cut_report,
    termination_message,
    with_report_limit,
)

KEYS = {
    "success",
    "durationMs",
    "rowsInserted",
    "recordsReported",
    "progressCounts",
    "error",
    "report",
    "reportTruncated",
    "loadId",
    "schemaChanges",
    "podName",
}


def result(report: str = "ok", **kw: object) -> RunResult:
    return RunResult(
        success=True,
        duration_ms=1234,
        rows_inserted=1000,
        records_reported=1000,
        progress_counts={"extract": {"items": 1000}, "load": {"items": 1000}},
        report=report,
        load_id="1732953600.123",
        **kw,
    )


def test_keys_are_the_contracts_camel_case() -> None:
    body = json.loads(termination_message(result()))
    assert set(body) == KEYS
    assert body["rowsInserted"] == 1000 and body["reportTruncated"] is False


def test_short_report_is_kept_whole() -> None:
    assert json.loads(termination_message(result("tables: items 1000")))["report"] == (
        "tables: items 1000"
    )


@pytest.mark.parametrize("report", ["x" * 10_000, 'é\n"\\' * 3000, "表" * 5000, "\x01" * 5000])
def test_long_report_is_cut_with_a_marker_under_4_kib(report: str) -> None:
    raw = termination_message(result(report))
    assert len(raw) <= 4096
    body = json.loads(raw)
    assert body["reportTruncated"] is True
    assert "…[report truncated: " in body["report"]
    kept = body["report"].split("…[report truncated: ")[0]
    assert report.startswith(kept)
    more = int(body["report"].split("…[report truncated: ")[1].split(" ")[0])
    assert len(kept.encode()) + more == len(report.encode())
    assert len(raw) > 3500  # it used the room it had


def test_huge_counts_are_dropped_before_the_message_breaks() -> None:
    counts = {
        s: {f"table_{i:04d}": i for i in range(400)} for s in ("extract", "normalize", "load")
    }
    raw = termination_message(
        RunResult(success=False, progress_counts=counts, report="r" * 5000, error="e" * 2000)
    )
    assert len(raw) <= 4096
    body = json.loads(raw)
    assert body["success"] is False
    assert body["reportTruncated"] is True


def test_cut_report_respects_utf8_boundaries() -> None:
    cut, truncated = cut_report("表" * 100, 50)
    assert truncated and len(cut.encode()) <= 50
    cut.encode("utf-8")  # valid


def test_status_report_limit_is_64_kib() -> None:
    big = with_report_limit(result("y" * 100_000))
    assert big.report_truncated is True
    assert len(big.report.encode()) <= 64 * 1024
    assert with_report_limit(result("small")).report_truncated is False


def test_schema_changes_leave_the_termination_message_before_the_load_counts() -> None:
    from datapipelines.resources.run import SchemaChange

    changes = [
        SchemaChange(kind="ColumnAdded", table="items", column=f"a_rather_long_column_{i:03d}")
        for i in range(120)
    ]
    full = result(schema_changes=changes)
    assert len(json.dumps(full.to_dict())) > 4096
    message = json.loads(termination_message(full))
    assert message["schemaChanges"] is None
    assert message["progressCounts"] == {"load": {"items": 1000}}
    assert full.to_dict()["schemaChanges"][0]["column"] == "a_rather_long_column_000"
