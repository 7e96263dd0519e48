"""A PostgreSQL schema has one writer at a time and one owner namespace, whichever operator
shard dispatched the runs (the runner enforces both at the destination)."""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg2
import pytest

from datapipelines.runner.destlock import LOCK_SQL, lock_name
from tests.integration.runner.runnerkit import (
    Runner,
    postgres_destination,
    rest_resource,
    rest_spec,
)

pytestmark = pytest.mark.postgres


def spec_of(http_source: Any, postgres_server: Any, warehouse: str) -> dict:
    return rest_spec(
        http_source.url,
        postgres_destination(postgres_server, warehouse),
        resources=[rest_resource()],
    )


def test_a_connection_of_the_same_name_in_another_namespace_is_refused(
    http_source: Any, runner: Runner, postgres_server: Any, warehouse: str
) -> None:
    http_source.state.records = 20
    spec = spec_of(http_source, postgres_server, warehouse)
    assert runner.run(spec, name="orders", DATAPIPELINES_NAMESPACE="team-a").exit_code == 0
    other = runner.run(spec, name="orders", DATAPIPELINES_NAMESPACE="team-b")
    assert other.exit_code == 2, other.result
    assert "destination conflict" in (other.error or "")
    assert "namespace team-a" in (other.error or "")
    # the first namespace goes on loading
    assert runner.run(spec, name="orders", DATAPIPELINES_NAMESPACE="team-a").exit_code == 0


def test_a_second_writer_waits_for_the_schema_lock(
    http_source: Any, runner: Runner, postgres_server: Any, warehouse: str
) -> None:
    http_source.state.records = 20
    spec = spec_of(http_source, postgres_server, warehouse)
    holder = psycopg2.connect(**postgres_server.params(warehouse))
    holder.autocommit = True
    with holder.cursor() as cur:  # another shard's runner holds the schema
        cur.execute(LOCK_SQL, (lock_name(warehouse, "demo_data"),))
        assert cur.fetchone() == (True,)
    released = threading.Timer(3.0, holder.close)
    released.start()
    started = time.monotonic()
    try:
        outcome = runner.run(spec, name="waits")
    finally:
        released.cancel()
        holder.close()
    assert outcome.exit_code == 0, outcome.error
    assert time.monotonic() - started >= 2.5, "the runner did not wait for the lock"
