"""Where the CLI finds the API and its key."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_URL = "http://127.0.0.1:8081"
URL_ENV = "DATAPIPELINES_API_URL"
KEY_ENV = "DATAPIPELINES_API_KEY"
TOKEN_ENV = "DATAPIPELINES_TOKEN"
KEY_FILE = Path(".cluster") / "api-key"  # written by `make demo` at the repository's root


@dataclass(frozen=True)
class Target:
    url: str
    key: str | None
    key_source: str  # for error messages: "--key", "$DATAPIPELINES_API_KEY", a file, "none"
    token: str | None = None  # a Kubernetes token (Authorization: Bearer), sent instead of a key


def find_key_file(start: Path) -> Path | None:
    """`.cluster/api-key` in `start` or the nearest folder above it that has one."""
    for folder in (start, *start.parents):
        candidate = folder / KEY_FILE
        if candidate.is_file():
            return candidate
    return None


def resolve(url: str, key: str | None, *, key_from_env: bool, cwd: Path | None = None) -> Target:
    """The API URL and key: `--key` (or the environment, which typer reads into it), else the
    demo's key file when run from inside the repository."""
    url = url.strip().rstrip("/") or DEFAULT_URL
    if "://" not in url:  # `localhost:8081`, as people type it
        url = f"http://{url}"
    if key:
        # the server's own variable may hold several keys (rotation): send the first
        first = key.split(",")[0].strip()
        return Target(url, first, f"${KEY_ENV}" if key_from_env else "--key")
    found = find_key_file(cwd or Path.cwd())
    if found is not None:
        text = found.read_text().strip()
        if text:
            return Target(url, text, str(found))
    return Target(url, None, "none")
