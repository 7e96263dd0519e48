"""Schemathesis over the live API process whose backend is the real apiserver.

The namespace holds connections (each with a run that stays active, so synchronous runs answer
409 instead of waiting for an operator that is not there), finished runs and a batch; generated
requests go through the real watch cache and the real create/patch/delete calls. No 5xx, and
every response matches the published schema.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import negative_data_rejection

from tests.integration.api.apikit import API_KEY, ApiServer, patch_status
from tests.support.kube import connection, create_namespace, delete_namespace, kubectl_apply
from tests.support.waiting import wait_for

pytestmark = pytest.mark.cluster

AUTH = {"X-API-Key": API_KEY}
EXCLUDED = [negative_data_rejection]  # extra unknown query parameters are ignored on purpose
CONNECTIONS = ["s-one", "s-two", "s-off"]
TASKS = ["s-one-active", "s-two-active", "s-one-done", "s-batch", "nope"]


@pytest.fixture(scope="module")
def live_api(crds: None) -> Iterator[ApiServer]:
    ns = create_namespace("api-st")
    kubectl_apply([connection(n, ns, enabled=n != "s-off") for n in CONNECTIONS])
    runs = []
    for name, conn in (
        ("s-one-active", "s-one"),
        ("s-two-active", "s-two"),
        ("s-off-active", "s-off"),
        ("s-one-done", "s-one"),
    ):
        runs.append(
            {
                "apiVersion": "datapipelines.io/v1alpha1",
                "kind": "PipelineRun",
                "metadata": {
                    "name": name,
                    "namespace": ns,
                    "labels": {"datapipelines.io/connection": conn},
                },
                "spec": {"connectionName": conn, "trigger": "manual"},
            }
        )
    runs.append(
        {
            "apiVersion": "datapipelines.io/v1alpha1",
            "kind": "PipelineBatch",
            "metadata": {"name": "s-batch", "namespace": ns},
            "spec": {"connections": ["s-one", "s-two"]},
        }
    )
    kubectl_apply(runs)
    patch_status(
        ns,
        "prun",
        "s-one-done",
        {
            "phase": "Succeeded",
            "startTime": "2026-11-30T08:00:00Z",
            "completionTime": "2026-11-30T08:00:01Z",
            "attempts": 1,
            "result": {"success": True, "durationMs": 1000, "rowsInserted": 1},
        },
    )
    server = ApiServer(ns, key=API_KEY)
    server.start()
    try:
        server.wait_healthy()
        with server.client() as c:
            wait_for(lambda: len(c.get("/connections").json()) == 3, "connections in the cache")
        yield server
    finally:
        server.stop()
        delete_namespace(ns)


@pytest.fixture(scope="module")
def live_schema(live_api: ApiServer) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(live_api.url + "/openapi.json")


def _operations() -> list[tuple[str, str]]:
    """Every documented operation, from the app's own OpenAPI document (no cluster needed)."""
    from datapipelines.api.main import create_app
    from datapipelines.api.settings import Settings
    from tests.unit.api.fakekube import FakeStore

    spec = create_app(Settings(api_key=API_KEY), kube=FakeStore(), archive=None).openapi()
    return [(path, method.upper()) for path, ops in spec["paths"].items() for method in ops]


MODES = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
KNOWN = {"name": [*CONNECTIONS, "nope"], "task_id": TASKS, "run_id": TASKS}


@pytest.mark.parametrize(("path", "method"), _operations())
@given(data=st.data())
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_live_api_has_no_server_errors(
    live_schema: schemathesis.BaseSchema, path: str, method: str, data: st.DataObject
) -> None:
    """Generated requests, valid ones naming real objects, invalid ones now and then."""
    operation = live_schema[path][method]
    has_query = any(p.location == "query" for p in operation.iter_parameters())
    mode = data.draw(st.sampled_from(MODES)) if has_query else GenerationMode.POSITIVE
    case = data.draw(operation.as_strategy(mode))
    # positive cases name real objects (past the 404s); negative ones only half the time
    if case.path_parameters and (mode is GenerationMode.POSITIVE or data.draw(st.booleans())):
        case.path_parameters = {
            key: data.draw(st.sampled_from(KNOWN[key])) for key in case.path_parameters
        }
    response = case.call(headers=AUTH, timeout=30)
    assert response.status_code < 500, response.text
    case.validate_response(response, headers=AUTH, excluded_checks=EXCLUDED)


def test_generated_requests_reached_the_cluster(live_api: ApiServer) -> None:
    """The run above went past auth and 404s: creates, patches and reads of real objects."""
    import re

    import httpx

    metrics = httpx.get(live_api.url + "/metrics").text
    seen = set(
        re.findall(r'requests_total\{method="(\w+)",route="([^"]+)",status="(\d+)"', metrics)
    )
    for expected in [
        ("POST", "/run_selected", "200"),
        ("GET", "/task_status/{task_id}", "200"),
        ("POST", "/cancel_task/{task_id}", "200"),
        ("POST", "/connections/{name}/run", "409"),
        ("GET", "/connections/{name}/status", "200"),
        ("GET", "/history", "200"),
        ("GET", "/history", "422"),
    ]:
        assert expected in seen, (expected, sorted(seen))
    assert not [s for s in seen if s[2].startswith("5")], sorted(seen)
