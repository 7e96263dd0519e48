"""registration.py, the kopf side: indexes project bodies into the store's keys, every watch
event maps to reconcile keys, and no handler makes kopf write to our objects."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import kopf
import pytest

from datapipelines.operator import registration
from tests.unit.operator.opkit import NS, batch_body, connection_body, job_body, pod_body, run_body


class Keys:
    def __init__(self) -> None:
        self.added: list[tuple[str, ...]] = []

    def add(self, key: tuple[str, ...]) -> None:
        self.added.append(key)


def memo() -> Any:
    return SimpleNamespace(ctx=Keys())


def test_no_handler_needs_a_finalizer_or_kopf_state() -> None:
    registry = kopf.get_default_registry()
    assert not registry._changing.get_all_handlers()  # no on.create/update/delete/resume
    assert not registry._spawning.get_all_handlers()  # no timers or daemons
    assert len(registry._indexing.get_all_handlers()) == 5
    assert len(registry._watching.get_all_handlers()) == 5


def test_startup_settings_filter_jobs_and_pods_server_side() -> None:
    settings = kopf.OperatorSettings()
    registration.configure(settings=settings)
    assert settings.posting.enabled is False
    selectors = settings.watching.label_selectors
    assert selectors["batch", "jobs"] == "app.kubernetes.io/managed-by=datapipelines-operator"
    assert selectors["v1", "pods"].startswith("datapipelines.io/run,")


def test_index_functions_file_objects_under_the_store_keys() -> None:
    conn = registration.connection_index(body=kopf.Body(connection_body("a")))
    assert ("conn", NS, "a") in conn
    run = registration.run_index(body=kopf.Body(run_body("r1", "a", batch="b1")))
    assert run is not None and set(run) == {
        ("conn", NS, "a"),
        ("name", NS, "r1"),
        ("batch", NS, "b1"),
    }
    assert registration.run_index(body=kopf.Body({"metadata": {"name": "x"}, "spec": {}})) is None
    assert set(registration.job_index(body=kopf.Body(job_body("r1", "a")))) == {("run", NS, "r1")}
    assert set(registration.pod_index(body=kopf.Body(pod_body("r1", "a")))) == {("run", NS, "r1")}
    batch = registration.batch_index(body=kopf.Body(batch_body("b1")))
    assert batch is not None and set(batch) == {("batch", NS, "b1")}


@pytest.mark.parametrize(
    ("handler", "body", "keys"),
    [
        (registration.connection_event, connection_body("a"), [("conn", NS, "a")]),
        (registration.run_event, run_body("r1", "a"), [("conn", NS, "a")]),
        (
            registration.run_event,
            run_body("r1", "a", batch="b1"),
            [("conn", NS, "a"), ("batch", NS, "b1")],
        ),
        (registration.job_event, job_body("r1", "a"), [("conn", NS, "a")]),
        (registration.pod_event, pod_body("r1", "a"), [("conn", NS, "a")]),
        (registration.batch_event, batch_body("b1"), [("batch", NS, "b1")]),
    ],
)
async def test_every_event_maps_to_its_reconcile_keys(
    handler: Any, body: dict[str, Any], keys: list[tuple[str, ...]]
) -> None:
    m = memo()
    await handler(body=kopf.Body(body), memo=m)
    assert m.ctx.added == keys
