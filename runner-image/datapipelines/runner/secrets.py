"""Credentials from mounted Secret files: `$DATAPIPELINES_SECRETS_DIR/<name>/<key>`.

Values are read only here. Every value read is remembered so `redact()` can blank it out of any
text that leaves the process (errors, reports, logs, status); values are never logged.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Protocol

from .errors import ConfigError

DEFAULT_SECRETS_DIR = "/var/run/datapipelines/secrets"
MASK = "***"

_known_values: set[str] = set()
_lock = threading.Lock()
_secrets_dir: str | None = None


class SecretRefLike(Protocol):
    name: str
    key: str


def set_secrets_dir(path: str | os.PathLike[str] | None) -> None:
    """Overrides $DATAPIPELINES_SECRETS_DIR (the `--secrets-dir` flag)."""
    global _secrets_dir
    _secrets_dir = os.fspath(path) if path is not None else None


def secrets_dir() -> Path:
    return Path(_secrets_dir or os.environ.get("DATAPIPELINES_SECRETS_DIR") or DEFAULT_SECRETS_DIR)


def path_for(ref: SecretRefLike) -> Path:
    """The file that holds the value of a `{name, key}` Secret reference."""
    for part in (ref.name, ref.key):
        if not part or "/" in part or part in (".", ".."):
            raise ConfigError(f"invalid secret reference {ref.name!r}/{ref.key!r}")
    return secrets_dir() / ref.name / ref.key


def read(ref: SecretRefLike) -> str:
    """The value of a Secret reference (trailing newline stripped); ConfigError if missing."""
    path = path_for(ref)
    try:
        value = path.read_text(encoding="utf-8").rstrip("\r\n")
    except FileNotFoundError:
        raise ConfigError(
            f"secret {ref.name}/{ref.key} not found (expected the file {path})"
        ) from None
    except OSError as exc:
        raise ConfigError(f"secret {ref.name}/{ref.key} unreadable: {exc.strerror}") from None
    if not value:
        raise ConfigError(f"secret {ref.name}/{ref.key} is empty")
    remember(value)
    return value


def remember(value: str) -> None:
    """Registers a sensitive value (and its URL-quoted form) for `redact()`."""
    from urllib.parse import quote

    if len(value) < 3:  # too short to blank out of text without mangling it
        return
    with _lock:
        _known_values.add(value)
        _known_values.add(quote(value, safe=""))


def redact(text: str) -> str:
    """`text` with every known secret value replaced by ***."""
    if not text:
        return text
    with _lock:
        values = sorted(_known_values, key=len, reverse=True)
    for value in values:
        if value in text:
            text = text.replace(value, MASK)
    return text


def forget_all() -> None:
    """Clears the remembered values (tests)."""
    with _lock:
        _known_values.clear()
