"""The runner's log kept with its run: head and tail, bounded whatever the run logs."""

from __future__ import annotations

import logging

from datapipelines.resources.run import MAX_KEPT_LOG_BYTES, KeptLog
from datapipelines.runner.keptlog import HEAD_BYTES, TAIL_BYTES, LogKeeper


def test_a_short_log_is_kept_whole() -> None:
    keeper = LogKeeper()
    keeper.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("keptlog-test")
    logger.addHandler(keeper)
    try:
        logger.warning("first")
        logger.error("source HTTP 401: bad credentials")
    finally:
        logger.removeHandler(keeper)
    kept = keeper.kept()
    assert kept.text() == "WARNING first\nERROR source HTTP 401: bad credentials\n"
    assert (kept.lines, kept.cut_lines) == (2, 0)
    again = KeptLog.model_validate(kept.model_dump(by_alias=True))  # as stored in the run
    assert again.text() == kept.text()


def test_a_100_mb_log_keeps_its_head_and_tail_within_the_bound() -> None:
    keeper = LogKeeper()
    line = "x" * 90
    total = 100 * 1024 * 1024 // (len(line) + 12)
    keeper.add("the first line")
    for i in range(total):
        keeper.add(f"{i:010d} {line}")
    keeper.add("the last line: the error")
    assert keeper.head_size <= HEAD_BYTES and keeper.tail_size <= TAIL_BYTES  # memory bounded
    kept = keeper.kept()
    assert len(kept.data) <= MAX_KEPT_LOG_BYTES
    assert kept.bytes >= 100 * 1024 * 1024 * 0.99 and kept.lines == total + 2
    text = kept.text()
    lines = text.splitlines()
    assert lines[0] == "the first line" and lines[-1] == "the last line: the error"
    assert kept.cut_lines > 0 and f"{kept.cut_lines} line(s)" in text
    assert kept.cut_lines + len(lines) - 1 == kept.lines  # every line kept or counted


def test_a_log_that_compresses_badly_still_fits() -> None:
    import random

    rng = random.Random(7)
    keeper = LogKeeper()
    for _ in range(20000):
        keeper.add("".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(80)))
    kept = keeper.kept()
    assert len(kept.data) <= MAX_KEPT_LOG_BYTES and kept.cut_lines > 0
    assert kept.text().splitlines()[-1] == keeper.tail[-1]


def test_a_forged_kept_log_cannot_blow_up_its_reader() -> None:
    """status.runnerResult.log is written by the runner: a gzip bomb (tens of KiB that inflate to
    32 MiB) decodes to at most MAX_KEPT_LOG_TEXT; garbage reads as a line saying so."""
    import base64
    import gzip

    from datapipelines.resources.run import MAX_KEPT_LOG_TEXT

    bomb = base64.b64encode(gzip.compress(b"A" * (32 * 1024 * 1024), 9)).decode()
    assert len(bomb) <= MAX_KEPT_LOG_BYTES
    text = KeptLog(data=bomb, lines=1, bytes=1).text()
    assert len(text) <= MAX_KEPT_LOG_TEXT + 100 and text.endswith("cut here]\n")
    assert "not gzip" in KeptLog(data="!!!not base64", lines=0, bytes=0).text()
    assert "not gzip" in KeptLog(data=base64.b64encode(b"plain").decode(), lines=0, bytes=0).text()
