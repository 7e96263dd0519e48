"""What every handler needs: settings, the API wrapper, the archive and per-key locks.

One operator process acts at a time (Lease), so in-process locks are enough to serialise
all decisions about one connection's runs (concurrency policy) and one batch.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .archive import Archive
from .config import Settings
from .kube import Kube


def now_iso() -> str:
    """Now as RFC 3339 with second precision and ``Z`` (the apiserver's format)."""
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def parse_iso(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass
class Context:
    settings: Settings
    kube: Kube
    namespace: str
    archive: Archive | None = None
    _locks: dict[tuple[str, str, str], asyncio.Lock] = field(default_factory=dict)

    def lock(self, kind: str, namespace: str, name: str) -> asyncio.Lock:
        key = (kind, namespace, name)
        if key not in self._locks:
            self._locks[key] = asyncio.Lock()
        return self._locks[key]

    def connection_lock(self, namespace: str, name: str) -> asyncio.Lock:
        return self.lock("connection", namespace, name)

    def batch_lock(self, namespace: str, name: str) -> asyncio.Lock:
        return self.lock("batch", namespace, name)
