"""Named contexts for several installations, like kubectl's: a config file the CLI reads.

    # ~/.config/datapipelines/config.yaml  ($DATAPIPELINES_CONFIG, else $XDG_CONFIG_HOME/...)
    current-context: prod
    contexts:
      - name: prod
        api: https://pipelines.example.com
        key-file: ~/.config/datapipelines/prod.key   # or `key:`; or `token-file:`
      - name: demo
        api: http://127.0.0.1:8081

What a context gives is the default: `--api`/`--key`/`--token` and their environment variables
win over it. Files are read, never executed; a key in the file itself is allowed (like a
kubeconfig) but `key-file` keeps it out of the config.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from datapipelines.cli.client import EXIT_USAGE, CliError

CONFIG_ENV = "DATAPIPELINES_CONFIG"
CONTEXT_ENV = "DATAPIPELINES_CONTEXT"


class Context(BaseModel):
    """One installation: where its API is and how to sign in."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = Field(min_length=1, max_length=253)
    api: str | None = Field(default=None, description="Base URL of the REST API.")
    key: str | None = Field(default=None, description="An API key (prefer key-file).")
    key_file: str | None = Field(default=None, alias="key-file")
    token_file: str | None = Field(default=None, alias="token-file")

    def read_key(self) -> str | None:
        return self.key or _read_secret(self.key_file, self.name, "key-file")

    def read_token(self) -> str | None:
        return _read_secret(self.token_file, self.name, "token-file")


class CliConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    current_context: str | None = Field(default=None, alias="current-context")
    contexts: list[Context] = Field(default_factory=list)

    @field_validator("contexts")
    @classmethod
    def _unique(cls, contexts: list[Context]) -> list[Context]:
        seen: set[str] = set()
        for c in contexts:
            if c.name in seen:
                raise ValueError(f"context {c.name!r} is defined twice")
            seen.add(c.name)
        return contexts

    def find(self, name: str) -> Context | None:
        return next((c for c in self.contexts if c.name == name), None)

    def dump(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True)


def config_path(environ: dict[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    if env.get(CONFIG_ENV):
        return Path(env[CONFIG_ENV]).expanduser()
    base = Path(env.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "datapipelines" / "config.yaml"


def load(path: Path) -> CliConfig:
    """The config file; an empty config when there is none; CliError naming the problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return CliConfig()
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}", EXIT_USAGE) from None
    try:
        data = yaml.safe_load(text) or {}
        return CliConfig.model_validate(data)
    except yaml.YAMLError as exc:
        raise CliError(
            f"{path} is not valid YAML: {str(exc).splitlines()[0]}", EXIT_USAGE
        ) from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top)"
        raise CliError(f"{path}: {where}: {first['msg']}", EXIT_USAGE) from None


def save(path: Path, config: CliConfig) -> None:
    """Writes the file (0600: it may hold a key) atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        yaml.safe_dump(config.dump(), out, sort_keys=False)
    os.replace(tmp, path)


def selected(config: CliConfig, name: str | None, path: Path) -> Context | None:
    """The context to use: `name` (--context / $DATAPIPELINES_CONTEXT), else current-context."""
    wanted = name or config.current_context
    if not wanted:
        return None
    found = config.find(wanted)
    if found is None:
        known = ", ".join(c.name for c in config.contexts) or "none"
        raise CliError(
            f"no context {wanted!r} in {path} (known: {known}); add it with "
            f"`datapipelines config set-context {wanted} --api URL`",
            EXIT_USAGE,
        )
    return found


def _read_secret(file: str | None, context: str, field: str) -> str | None:
    if not file:
        return None
    path = Path(file).expanduser()
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except OSError as exc:
        raise CliError(
            f"context {context}: cannot read {field} {path}: {exc.strerror}", EXIT_USAGE
        ) from None
