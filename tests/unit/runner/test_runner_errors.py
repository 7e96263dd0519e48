"""Every failure becomes one line that names its cause, and an exit code."""

from __future__ import annotations

import psycopg2
import pytest
import requests
import sqlalchemy.exc

from datapipelines.runner.errors import (
    EXIT_BAD_CONFIG,
    EXIT_CONTRACT_VIOLATION,
    EXIT_SYNC_FAILED,
    ConfigError,
    classify,
    one_line,
)


class PipelineStepFailed(Exception):  # the shape of dlt's: .step and .exception
    def __init__(self, step: str, exception: BaseException) -> None:
        super().__init__(f"Pipeline execution failed at `step={step}`: {exception}")
        self.step = step
        self.exception = exception


def http_error(status: int, url: str, reason: str) -> requests.HTTPError:
    response = requests.Response()
    response.status_code = status
    response.url = url
    response.reason = reason
    response.request = requests.Request("GET", url).prepare()
    return requests.HTTPError(f"{status} Server Error: {reason} for url: {url}", response=response)


def wrapped(step: str, exc: BaseException) -> BaseException:
    try:
        try:
            raise exc
        except BaseException as inner:
            raise RuntimeError("resource items failed") from inner
    except RuntimeError as outer:
        return PipelineStepFailed(step, outer)


def test_http_500_names_status_and_url() -> None:
    url = "http://127.0.0.1:8765/items?page=8"
    failure = classify(wrapped("extract", http_error(500, url, "Internal Server Error")))
    assert failure.message == f"source HTTP 500: Internal Server Error for GET {url}"
    assert failure.exit_code == EXIT_SYNC_FAILED


def test_http_404_is_an_unknown_resource() -> None:
    failure = classify(wrapped("extract", http_error(404, "http://h/nope", "Not Found")))
    assert failure.message == "source HTTP 404: Not Found for GET http://h/nope (unknown resource)"


@pytest.mark.parametrize("status", [401, 403])
def test_http_auth_failures_are_bad_credentials(status: int) -> None:
    failure = classify(wrapped("extract", http_error(status, "http://h/items", "Unauthorized")))
    assert failure.message.startswith(f"bad credentials: source answered HTTP {status}")


def test_connection_refused_source_is_unreachable() -> None:
    exc = requests.ConnectionError("Max retries exceeded ... [Errno 111] Connection refused")
    exc.request = requests.Request("GET", "http://127.0.0.1:1/items").prepare()
    failure = classify(wrapped("extract", exc))
    assert failure.message == "source unreachable: http://127.0.0.1:1/items (connection refused)"


def test_postgres_wrong_password_is_bad_credentials() -> None:
    exc = psycopg2.OperationalError(
        'connection to server at "127.0.0.1", port 5432 failed: FATAL:  password '
        'authentication failed for user "loader"\n'
    )
    failure = classify(wrapped("sync", exc), destination="postgres 127.0.0.1:5432/wh as loader")
    assert failure.message.startswith("bad credentials: postgres 127.0.0.1:5432/wh as loader")
    assert "password authentication failed" in failure.message


def test_postgres_refused_connection_is_destination_unreachable() -> None:
    exc = psycopg2.OperationalError(
        'connection to server at "127.0.0.1", port 1 failed: Connection refused\n'
        "\tIs the server running on that host and accepting TCP/IP connections?\n"
    )
    failure = classify(wrapped("load", exc), destination="postgres 127.0.0.1:1/wh")
    assert failure.message.startswith("destination unreachable: postgres 127.0.0.1:1/wh")
    assert "\n" not in failure.message


def test_other_destination_errors_are_refusals() -> None:
    exc = psycopg2.errors.InsufficientPrivilege("permission denied for schema demo_data")
    failure = classify(wrapped("load", exc), destination="postgres db")
    assert (
        failure.message
        == "destination refused: postgres db: permission denied for schema demo_data"
    )


def test_source_database_errors_are_on_the_source_side() -> None:
    driver = psycopg2.OperationalError('FATAL:  password authentication failed for user "x"')
    exc = sqlalchemy.exc.OperationalError("SELECT 1", {}, driver)
    failure = classify(wrapped("extract", exc), source="source database")
    assert failure.message.startswith("bad credentials: source database rejected the login")


def test_config_error_exits_2() -> None:
    failure = classify(ConfigError("secret a/b not found"))
    assert failure.message == "bad config: secret a/b not found"
    assert failure.exit_code == EXIT_BAD_CONFIG
    assert classify(wrapped("extract", ConfigError("x"))).exit_code == EXIT_BAD_CONFIG


def test_unknown_errors_still_name_the_innermost_cause_and_step() -> None:
    failure = classify(wrapped("normalize", ValueError("bad row")))
    assert failure.message == "sync failed: ValueError during normalize: bad row"


def test_one_line_collapses_and_caps() -> None:
    assert one_line("a\n  b\tc") == "a b c"
    assert len(one_line("x" * 5000)) == 600


def test_sigterm_wrapped_by_dlt_is_cancelled() -> None:
    failure = classify(wrapped("extract", KeyboardInterrupt("terminated by signal 15")))
    assert failure.message == "cancelled: terminated by signal 15"


def test_a_violated_contract_names_table_and_column_and_exits_3() -> None:
    from dlt.common.schema.exceptions import DataValidationError

    exc = DataValidationError("s", "items", "color", "columns", "freeze", None, {}, None)
    failure = classify(wrapped("normalize", exc))
    assert failure.message == (
        "contract violation: table items column color: new columns are not allowed "
        "(schemaContract.columns: freeze)"
    )
    assert failure.exit_code == EXIT_CONTRACT_VIOLATION == 3
    assert not failure.transient


def test_a_frozen_type_names_the_column_not_dlts_variant() -> None:
    from dlt.common.schema.exceptions import DataValidationError

    table = {"columns": {"price": {"name": "price", "data_type": "double"}}}
    exc = DataValidationError("s", "items", "price__v_text", "data_type", "freeze", table, {})
    assert classify(wrapped("normalize", exc)).message == (
        "contract violation: table items column price: a text value where the column is "
        "double is not allowed (schemaContract.dataType: freeze)"
    )


def test_a_frozen_table_has_no_column() -> None:
    from dlt.common.schema.exceptions import DataValidationError

    exc = DataValidationError("s", "others", None, "tables", "freeze", None, {})
    assert classify(wrapped("extract", exc)).message == (
        "contract violation: table others: new tables are not allowed "
        "(schemaContract.tables: freeze)"
    )


def test_a_locked_duckdb_file_is_busy_and_transient() -> None:
    import duckdb

    exc = duckdb.IOException(
        'IO Error: Could not set lock on file "/var/lib/datapipelines/warehouse/warehouse.duckdb":'
        " Conflicting lock is held in /usr/bin/python3.11 (PID 4242). See also "
        "https://duckdb.org/docs/current/connect/concurrency"
    )
    failure = classify(wrapped("sync", exc), destination="duckdb /x")
    assert failure.message == (
        "destination busy: another process holds the DuckDB file "
        "/var/lib/datapipelines/warehouse/warehouse.duckdb (/usr/bin/python3.11, PID 4242); "
        "DuckDB allows one writing process per file"
    )
    assert failure.transient and failure.exit_code == EXIT_SYNC_FAILED


def test_a_lost_destination_is_transient_a_refusal_is_not() -> None:
    lost = psycopg2.OperationalError("terminating connection due to administrator command")
    assert classify(wrapped("load", lost)).transient
    starting = psycopg2.OperationalError(
        'connection to server at "127.0.0.1", port 5 failed: FATAL:  the database system is '
        "starting up"
    )
    assert classify(wrapped("sync", starting)).transient
    denied = psycopg2.errors.InsufficientPrivilege("permission denied for schema demo_data")
    assert not classify(wrapped("load", denied)).transient
    assert not classify(wrapped("extract", http_error(500, "http://h/x", "Oops"))).transient
