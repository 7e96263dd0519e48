"""Failure classification: any exception → one line naming the cause, and an exit code.

Kinds (the line starts with the kind): `bad config`, `source unreachable`, `source HTTP <status>`,
`bad credentials`, `destination unreachable`, `destination busy`, `destination refused`,
`contract violation`, `cancelled`, `sync failed`.
Exit codes (the pod contract's): 0 success, 1 sync failure (the Job retries), 2 bad
configuration, 3 schema contract violated (neither is retried).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from datapipelines.resources import podcontract as pod

EXIT_OK = pod.EXIT_OK
EXIT_SYNC_FAILED = pod.EXIT_SYNC_FAILED
EXIT_BAD_CONFIG = pod.EXIT_BAD_CONFIG
EXIT_CONTRACT_VIOLATION = pod.EXIT_CONTRACT_VIOLATION

#: Failures a later attempt may not meet again: the destination went away or is locked.
#: The runner retries them itself (sync.py) before it gives up with exit code 1.
TRANSIENT_KINDS = ("destination unreachable", "destination busy")

MAX_ERROR_CHARS = 600


class RunnerError(Exception):
    """An error whose message is already the one-line cause."""

    kind = "sync failed"
    exit_code = EXIT_SYNC_FAILED


class ConfigError(RunnerError):
    kind = "bad config"
    exit_code = EXIT_BAD_CONFIG


@dataclass(frozen=True)
class Failure:
    kind: str
    detail: str
    exit_code: int = EXIT_SYNC_FAILED

    @property
    def message(self) -> str:
        return one_line(f"{self.kind}: {self.detail}")

    @property
    def transient(self) -> bool:
        return self.kind in TRANSIENT_KINDS


def one_line(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    text = re.sub(r"\s+", " ", str(text)).strip()
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


def chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and everything it wraps (__cause__, __context__, dlt's `.exception`)."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop(0)
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        for attr in ("exception", "__cause__", "__context__", "orig"):
            nested = getattr(current, attr, None)
            if isinstance(nested, BaseException):
                todo.append(nested)


_PG_AUTH = ("password authentication failed", "no password supplied", 'role "', "pg_hba.conf")
_PG_UNREACHABLE = (
    "connection refused",
    "could not connect",
    "could not translate host name",
    "timeout expired",
    "server closed the connection unexpectedly",
    "terminating connection",
    "connection to server",
    "connection already closed",
    "the database system is shutting down",
    "the database system is starting up",
    "the database system is in recovery mode",
    "no connection to the server",
    "ssl syscall error",
)


def _failed_step(exc: BaseException) -> str | None:
    for e in chain(exc):
        step = getattr(e, "step", None)
        if isinstance(step, str) and type(e).__name__ == "PipelineStepFailed":
            return step
    return None


def _pg_message(exc: BaseException) -> str:
    """The first line of a psycopg2/libpq message: enough to name the cause."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def classify(
    exc: BaseException, *, source: str = "source", destination: str = "destination"
) -> Failure:
    """The one-line cause of a failed sync.

    `source`/`destination` describe the two ends for the message, e.g. "postgres 127.0.0.1:5432".
    Side (source vs destination) is decided by dlt's failed step: `extract` talks to the source,
    `sync` (state restore) and `load` to the destination.
    """
    if isinstance(exc, RunnerError):
        return Failure(exc.kind, str(exc), exc.exit_code)
    step = _failed_step(exc)
    errors = list(chain(exc))

    for e in errors:  # SIGTERM (a deleted Job) becomes KeyboardInterrupt; dlt wraps it
        if isinstance(e, KeyboardInterrupt):
            return Failure("cancelled", str(e) or "interrupted")

    for e in errors:  # the data broke the connection's schema contract
        if type(e).__name__ == "DataValidationError":
            return contract_violation(e)

    for e in errors:  # config problems found by dlt itself
        name = type(e).__name__
        if name in ("ConfigFieldMissingException", "InvalidResourceDataTypeFunctionNotAGenerator"):
            return Failure("bad config", f"{name}: {e}", 2)
        if isinstance(e, RunnerError):
            return Failure(e.kind, str(e), e.exit_code)

    for e in errors:  # HTTP sources (requests)
        response = getattr(e, "response", None)
        status = getattr(response, "status_code", None)
        if status is not None and type(e).__name__ == "HTTPError":
            request = getattr(response, "request", None)
            method = getattr(request, "method", None) or "GET"
            url = getattr(response, "url", None) or getattr(request, "url", "?")
            reason = getattr(response, "reason", "") or ""
            if status in (401, 403):
                return Failure(
                    "bad credentials", f"source answered HTTP {status} {reason} for {method} {url}"
                )
            hint = " (unknown resource)" if status == 404 else ""
            return Failure(f"source HTTP {status}", f"{reason} for {method} {url}{hint}")
    for e in errors:
        module = type(e).__module__
        if module.startswith(("requests", "urllib3")) and type(e).__name__ in (
            "ConnectionError",
            "ConnectTimeout",
            "ReadTimeout",
            "Timeout",
            "NewConnectionError",
            "MaxRetryError",
            "SSLError",
            "ProxyError",
        ):
            request = getattr(e, "request", None)
            url = getattr(request, "url", None) or getattr(e, "url", None) or source
            cause = _connection_cause(e)
            return Failure("source unreachable", f"{url} ({cause})")

    for e in errors:  # DuckDB allows one writing process per file
        if "duckdb" in type(e).__module__ and "could not set lock on file" in str(e).lower():
            return duckdb_locked(e)

    on_source_side = step == "extract"
    for e in errors:  # databases: psycopg2 (postgres destination) and SQLAlchemy (sql source)
        module = type(e).__module__
        if not module.startswith(("psycopg2", "psycopg", "sqlalchemy", "duckdb")):
            continue
        text = _pg_message(e)
        lowered = str(e).lower()
        side = source if on_source_side else destination
        if any(marker in lowered for marker in _PG_AUTH) and "authentication" in lowered:
            return Failure("bad credentials", f"{side} rejected the login: {text}")
        if any(marker in lowered for marker in _PG_UNREACHABLE):
            kind = "source unreachable" if on_source_side else "destination unreachable"
            return Failure(kind, f"{side}: {text}")
        if module.startswith("sqlalchemy") and on_source_side:
            continue  # look further down the chain for the driver's own error
        kind = "source refused" if on_source_side else "destination refused"
        return Failure(kind, f"{side}: {text}")

    for e in errors:
        name = type(e).__name__
        if name in (
            "DestinationTerminalException",
            "LoadClientJobFailed",
            "DatabaseTerminalException",
        ):
            return Failure("destination refused", f"{destination}: {e}")
        if name in ("DestinationTransientException", "DatabaseTransientException"):
            return Failure("destination unreachable", f"{destination}: {e}")
        if isinstance(e, (ConnectionError, TimeoutError)):
            kind = "source unreachable" if on_source_side else "destination unreachable"
            return Failure(kind, f"{source if on_source_side else destination}: {e}")

    innermost = errors[-1] if errors else exc
    where = f" during {step}" if step else ""
    return Failure("sync failed", f"{type(innermost).__name__}{where}: {innermost}")


_CONTRACT_RULE = {
    "tables": "new tables are not allowed (schemaContract.tables: {mode})",
    "columns": "new columns are not allowed (schemaContract.columns: {mode})",
    "data_type": "{value} where the column is {column_type} is not allowed "
    "(schemaContract.dataType: {mode})",
}
#: dlt stores a value of another type in a variant column `<column>__v_<type>`
_VARIANT = re.compile(r"^(?P<column>.+)__v_(?P<type>[a-z_]+)$")


def contract_violation(exc: BaseException) -> Failure:
    """dlt's DataValidationError as `contract violation: table T column C: <rule>` (exit 3)."""
    table = getattr(exc, "table_name", None) or "?"
    column = getattr(exc, "column_name", None)
    entity = str(getattr(exc, "schema_entity", "") or "")
    mode = str(getattr(exc, "contract_mode", "") or "freeze")
    value, column_type = "a value of another type", "of another type"
    variant = _VARIANT.match(column or "") if entity == "data_type" else None
    if variant:
        column = variant.group("column")
        value = f"a {variant.group('type')} value"
        schema = getattr(exc, "table_schema", None)
        columns = schema.get("columns", {}) if isinstance(schema, dict) else {}
        column_type = str((columns.get(column) or {}).get("data_type") or column_type)
    rule = _CONTRACT_RULE.get(entity, entity + " is frozen ({mode})")
    detail = rule.format(mode=mode, value=value, column_type=column_type)
    where = f"table {table}" + (f" column {column}" if column else "")
    return Failure("contract violation", f"{where}: {detail}", EXIT_CONTRACT_VIOLATION)


def duckdb_locked(exc: BaseException) -> Failure:
    """DuckDB's "Could not set lock on file" as one line naming the file."""
    found = re.search(r'lock on file "([^"]+)"', str(exc))
    path = found.group(1) if found else "?"
    holder = re.search(r"held in (.+?) \(PID (\d+)\)", str(exc))
    by = f" ({holder.group(1)}, PID {holder.group(2)})" if holder else ""
    return Failure(
        "destination busy",
        f"another process holds the DuckDB file {path}{by}; DuckDB allows one writing process "
        "per file",
    )


def _connection_cause(exc: BaseException) -> str:
    text = " ".join(str(e) for e in chain(exc)).lower()
    for marker, cause in (
        ("connection refused", "connection refused"),
        ("name or service not known", "unknown host"),
        ("temporary failure in name resolution", "unknown host"),
        ("timed out", "timed out"),
        ("certificate verify failed", "TLS certificate not trusted"),
        ("connection reset", "connection reset"),
        ("remote end closed", "connection closed by the server"),
    ):
        if marker in text:
            return cause
    return type(exc).__name__
