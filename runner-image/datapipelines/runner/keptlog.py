"""The runner's log kept with its run (status.runnerResult.log) for after the pod is gone.

Every line the runner logs (formatted and redacted exactly as on stderr) goes through
`LogKeeper` too: the first HEAD_BYTES of lines are kept, then a rolling tail of TAIL_BYTES;
what falls between is counted, not kept. At the end the kept lines are gzip-compressed and
base64-encoded into at most MAX_KEPT_LOG_BYTES (the tail shrinks further if a log compresses
badly). Memory is bounded by HEAD_BYTES + TAIL_BYTES whatever the run logs (100 MB included).
"""

from __future__ import annotations

import base64
import gzip
import logging
from collections import deque

from datapipelines.resources.run import MAX_KEPT_LOG_BYTES, KeptLog

HEAD_BYTES = 32 * 1024
TAIL_BYTES = 160 * 1024
LINE_BYTES = 8 * 1024  # one longer line is cut (a dumped payload never fills the tail alone)
CUT_MARKER = "… {lines} line(s), {bytes} byte(s) of the log not kept here (the pod log had them) …"


class LogKeeper(logging.Handler):
    def __init__(self, head_bytes: int = HEAD_BYTES, tail_bytes: int = TAIL_BYTES) -> None:
        super().__init__(logging.INFO)
        self.head_bytes, self.tail_bytes = head_bytes, tail_bytes
        self.head: list[str] = []
        self.head_size = 0
        self.tail: deque[str] = deque()
        self.tail_size = 0
        self.lines = 0
        self.bytes = 0
        self.cut_lines = 0
        self.cut_bytes = 0

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
        except Exception:  # a line that cannot be formatted is not worth failing the run
            return
        for line in text.splitlines() or [""]:
            self.add(line)

    def add(self, line: str) -> None:
        data = line.encode("utf-8", errors="replace")
        self.lines += 1
        self.bytes += len(data) + 1
        if len(data) > LINE_BYTES:
            line = data[:LINE_BYTES].decode("utf-8", errors="ignore") + " …[line cut]"
        size = len(line.encode("utf-8")) + 1
        if not self.tail and self.head_size + size <= self.head_bytes:
            self.head.append(line)
            self.head_size += size
            return
        self.tail.append(line)
        self.tail_size += size
        while self.tail_size > self.tail_bytes and len(self.tail) > 1:
            self._drop_oldest_tail_line()

    def _drop_oldest_tail_line(self) -> None:
        dropped = self.tail.popleft()
        size = len(dropped.encode("utf-8")) + 1
        self.tail_size -= size
        self.cut_lines += 1
        self.cut_bytes += size

    def kept(self) -> KeptLog:
        """The kept lines, compressed into at most MAX_KEPT_LOG_BYTES."""
        with self.lock or _NoLock():
            while True:
                data = base64.b64encode(gzip.compress(self._text().encode("utf-8"), 6)).decode()
                if len(data) <= MAX_KEPT_LOG_BYTES or not self.tail:
                    break
                for _ in range(max(1, len(self.tail) // 4)):  # a quarter of the tail at a time
                    self._drop_oldest_tail_line()
            if len(data) > MAX_KEPT_LOG_BYTES:  # the head alone is too big: keep a marker only
                self.cut_lines += len(self.head)
                self.head, self.head_size = [], 0
                data = base64.b64encode(gzip.compress(self._text().encode("utf-8"))).decode()
            return KeptLog(data=data, lines=self.lines, bytes=self.bytes, cut_lines=self.cut_lines)

    def _text(self) -> str:
        middle = (
            [CUT_MARKER.format(lines=self.cut_lines, bytes=self.cut_bytes)]
            if self.cut_lines
            else []
        )
        return "\n".join([*self.head, *middle, *self.tail]) + "\n"


class _NoLock:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None
