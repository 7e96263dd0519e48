"""The API keys a server accepts: the keys file (scoped keys) and DATAPIPELINES_API_KEY.

The keys file (``DATAPIPELINES_API_KEYS_FILE``; the chart mounts ``api.keysSecret`` as a
directory, so the kubelet swaps the file when the Secret changes) is YAML or JSON::

    keys:
      - id: team-a-ci            # names the key in the audit log
        key: "<the key>"         # or sha256: <hex digest of the key>
        namespaces: [team-a]     # or "*" (the default): every namespace served
        verbs: [read, run]       # default: read, run, cancel

It is re-read when it changes (checked at most every 2 s, on a request): keys rotate and are
revoked without a restart. A file that does not parse at start stops the server naming the
field; a bad change later keeps the previous keys and logs an error. Keys are held as SHA-256
digests, compared in constant time with every known digest, and never logged.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from datapipelines.api.access import ALL_VERBS, KeyCaller, Verb

log = logging.getLogger(__name__)

RELOAD_CHECK_SECONDS = 2.0


class KeysFileError(ValueError):
    """The keys file cannot be read or does not validate (the message names the field)."""


class KeyEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,62}$")
    key: SecretStr | None = None
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{64}$")
    namespaces: list[str] | Literal["*"] = "*"
    verbs: list[Verb] = Field(default_factory=lambda: list(Verb))

    @model_validator(mode="after")
    def _one_secret(self) -> KeyEntry:
        if (self.key is None) == (self.sha256 is None):
            raise ValueError("give exactly one of key and sha256")
        if self.key is not None and len(self.key.get_secret_value()) < 16:
            raise ValueError("key must be at least 16 characters")
        return self

    def digest(self) -> bytes:
        if self.sha256 is not None:
            return bytes.fromhex(self.sha256)
        assert self.key is not None
        return sha256(self.key.get_secret_value())

    def caller(self) -> KeyCaller:
        namespaces = None if self.namespaces == "*" else frozenset(self.namespaces)
        return KeyCaller(f"key:{self.id}", namespaces, frozenset(self.verbs))


class KeysFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    keys: list[KeyEntry] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> KeysFile:
        ids = [k.id for k in self.keys]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            raise ValueError(f"key ids must be unique: {', '.join(twice)}")
        return self


def sha256(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def parse_keys_file(text: str, source: str) -> list[tuple[bytes, KeyCaller]]:
    """The keys of a keys file's text; KeysFileError naming the field otherwise."""
    try:
        data = yaml.safe_load(text) or {}
        parsed = KeysFile.model_validate(data)
    except yaml.YAMLError as exc:
        raise KeysFileError(f"{source}: not YAML or JSON ({exc})") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise KeysFileError(f"{source}: {where}: {first['msg']}") from None
    return [(entry.digest(), entry.caller()) for entry in parsed.keys]


def unscoped_caller(key: str) -> KeyCaller:
    """A key of DATAPIPELINES_API_KEY: every verb everywhere, named by a digest prefix."""
    return KeyCaller(f"key:sha256:{sha256(key).hex()[:12]}", None, ALL_VERBS)


class Keyring:
    """Every accepted key: `unscoped` (DATAPIPELINES_API_KEY) plus the keys file's."""

    @property
    def unscoped_digests(self) -> list[bytes]:
        return [digest for digest, _ in self._unscoped]

    def __init__(
        self,
        unscoped: list[str],
        path: Path | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._unscoped = [(sha256(k), unscoped_caller(k)) for k in unscoped]
        self.path = path
        self._clock = clock
        self._scoped: list[tuple[bytes, KeyCaller]] = []
        self._stamp: tuple[int, int, int] | None = None
        self._checked = float("-inf")
        if path is not None:
            self._scoped = self._read(path)  # KeysFileError at start: the server does not start

    @property
    def configured(self) -> bool:
        """Whether any key source is configured (none: keyed requests answer 500)."""
        return bool(self._unscoped) or self.path is not None

    def _read(self, path: Path) -> list[tuple[bytes, KeyCaller]]:
        try:
            st = path.stat()
            text = path.read_text()
        except OSError as exc:
            raise KeysFileError(f"{path}: cannot be read ({exc.strerror})") from None
        self._stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        return parse_keys_file(text, str(path))

    def refresh(self) -> None:
        """Re-read the keys file if it changed (checked at most every RELOAD_CHECK_SECONDS)."""
        if self.path is None:
            return
        now = self._clock()
        if now - self._checked < RELOAD_CHECK_SECONDS:
            return
        self._checked = now
        try:
            st = os.stat(self.path)
            stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        except OSError as exc:
            log.error(
                "API keys file unreadable, keeping the previous keys",
                extra={"path": str(self.path), "error": exc.strerror},
            )
            return
        if stamp == self._stamp:
            return
        try:
            scoped = self._read(self.path)
        except KeysFileError as exc:
            log.error("API keys file invalid, keeping the previous keys", extra={"error": str(exc)})
            return
        self._scoped = scoped
        log.info("API keys file reloaded", extra={"path": str(self.path), "keys": len(scoped)})

    def match(self, presented: str) -> KeyCaller | None:
        """The caller of `presented`: compared with every digest, no early exit."""
        return self.match_digest(sha256(presented))

    def match_digest(self, given: bytes) -> KeyCaller | None:
        """The caller whose key has the SHA-256 digest `given` (a console session holds the
        digest, never the key): revoked keys stop matching at the next reload."""
        self.refresh()
        found: KeyCaller | None = None
        for digest, caller in (*self._unscoped, *self._scoped):
            if hmac.compare_digest(given, digest) and found is None:
                found = caller
        return found
