"""Schemathesis over /openapi.json with a valid key, against the app over the fake store.

The fake holds connections, runs (queued, running, every terminal phase) and batches, and
finishes any run the API creates, so generated requests reach every code path, not just 404s.
The checks: no 5xx, and every response conforms to the schema the app publishes.
"""

from __future__ import annotations

import asyncio

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.specs.openapi.checks import negative_data_rejection

from datapipelines.api.main import create_app
from datapipelines.api.settings import Settings
from tests.unit.api.fakekube import AUTH, KEY, FakeStore


def _store() -> FakeStore:
    store = FakeStore()
    store.add_connection("alpha")
    store.add_connection("beta", enabled=False, concurrencyPolicy="Queue")
    store.add_connection(
        "gamma", status={"lastRunAt": "2026-11-29T10:00:00Z", "lastRunSuccess": True}
    )
    store.add_run("alpha-q", "alpha", "Queued")
    store.add_run("beta-r", "beta", "Running", progress={"stage": "load", "recordsExtracted": 5})
    for phase in ("Succeeded", "Failed", "Cancelled"):
        store.add_run(f"alpha-{phase.lower()}", "alpha", phase, result={"success": False})
    store.add_batch("batch-r", ["alpha", "beta"], state="running", current="beta")
    store.add_batch("batch-f", ["alpha"], state="finished", finishedAt="2026-11-30T09:00:00Z")

    def finish_soon(run: dict) -> None:
        loop = asyncio.get_running_loop()
        loop.call_soon(store.finish_run, run["metadata"]["name"])

    store.on_create_run = finish_soon
    return store


# Unknown extra query parameters are ignored, as HTTP APIs usually do; schemathesis' negative
# check would call that a violation, so it is the one check left out.
EXCLUDED = [negative_data_rejection]

app = create_app(Settings(api_key=KEY), kube=_store(), archive=None)
schema = schemathesis.openapi.from_asgi("/openapi.json", app)


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_no_server_errors_with_a_valid_key(case: schemathesis.Case) -> None:
    response = case.call(headers=AUTH)
    assert response.status_code < 500, response.text
    case.validate_response(response, headers=AUTH, excluded_checks=EXCLUDED)


KNOWN_VALUES = {
    "name": ["alpha", "beta", "gamma", "nope"],
    "task_id": [
        "alpha-q",
        "beta-r",
        "alpha-succeeded",
        "alpha-failed",
        "alpha-cancelled",
        "batch-r",
        "batch-f",
        "nope",
    ],
}
TEMPLATED = [
    ("/connections/{name}/status", "GET"),
    ("/connections/{name}/run", "POST"),
    ("/connections/{name}/run_async", "POST"),
    ("/task_status/{task_id}", "GET"),
    ("/cancel_task/{task_id}", "POST"),
]


@pytest.mark.parametrize(("path", "method"), TEMPLATED)
@given(data=st.data())
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_no_server_errors_on_existing_objects(path: str, method: str, data: st.DataObject) -> None:
    """Generated requests whose path names real objects, so they go past the 404s."""
    case = data.draw(schema[path][method].as_strategy())
    case.path_parameters = {
        key: data.draw(st.sampled_from(KNOWN_VALUES[key])) for key in case.path_parameters or {}
    }
    response = case.call(headers=AUTH)
    assert response.status_code < 500, response.text
    case.validate_response(response, headers=AUTH, excluded_checks=EXCLUDED)
