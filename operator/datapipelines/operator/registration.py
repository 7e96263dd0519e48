"""The kopf side: settings, login, the indexes (the operator's memory) and the event triggers.

Nothing here decides anything: index functions project bodies (``views``), and each event
handler only maps its object to the key(s) of the reconcile that owns it. kopf invokes
handlers only after every index has listed its resource, so the first reconcile already sees
the whole cluster. No kopf change-detection handlers are used: kopf writes nothing to the
objects (no finalizers, no annotations) and has nothing to replay.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any

import kopf

from datapipelines.resources import (
    BATCH_PLURAL,
    CONNECTION_PLURAL,
    GROUP,
    LABEL_BATCH,
    LABEL_CONNECTION,
    LABEL_MANAGED_BY,
    LABEL_RUN,
    MANAGED_BY_OPERATOR,
    RUN_PLURAL,
    VERSION,
)
from datapipelines.resources.incluster import in_cluster_url

from .store import Store, batch_keys, connection_keys, job_keys, pod_keys, run_keys
from .views import batch_view, connection_view, job_view, pod_view, run_view

RUN = (GROUP, VERSION, RUN_PLURAL)
CONNECTION = (GROUP, VERSION, CONNECTION_PLURAL)
BATCH = (GROUP, VERSION, BATCH_PLURAL)
JOBS = ("batch", "v1", "jobs")
PODS = ("v1", "pods")
OURS = f"{LABEL_MANAGED_BY}={MANAGED_BY_OPERATOR}"


class NoDiffBase(kopf.DiffBaseStorage):
    """No diff base at all. kopf builds one (a deep copy of the object's essence) on every event
    for change-detection handlers; this operator has none (event triggers and indexes only), and
    that copy was a quarter of the operator's CPU at 10,000 connections (docs/scale.md)."""

    def build(self, *, body: Any, extra_fields: Any = None) -> Any:
        return {}

    def fetch(self, *, body: Any) -> None:
        return None

    def store(self, *, body: Any, patch: Any, essence: Any) -> None:
        return None


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    """Quiet kopf: no Events of its own, no persistence, watches filtered by the server."""
    settings.posting.enabled = False
    settings.persistence.diffbase_storage = NoDiffBase()
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 10
    settings.networking.request_timeout = 30
    settings.networking.connect_timeout = 10
    settings.watching.chunk_size = 500
    # Only the project's own Jobs and pods are watched (server-side label selectors).
    settings.watching.label_selectors["batch", "jobs"] = OURS
    settings.watching.label_selectors["v1", "pods"] = f"{LABEL_RUN},{OURS}"


@kopf.on.login(id="login")
def login(settings: kopf.OperatorSettings, **kwargs: Any) -> kopf.ConnectionInfo | None:
    """The kubeconfig named now (``main`` sets KUBECONFIG from DATAPIPELINES_KUBECONFIG after
    the client libraries read it at import), else the pod's ServiceAccount."""
    if os.environ.get("KUBECONFIG"):
        return kopf.login_with_kubeconfig(settings=settings, **kwargs)
    info = kopf.login_with_service_account(settings=settings, **kwargs)
    server = in_cluster_url()
    return None if info is None or server is None else dataclasses.replace(info, server=server)


# ------------------------------------------------------------------ the indexes


@kopf.index(*CONNECTION)
def connection_index(body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return dict(connection_keys(connection_view(body)))


@kopf.index(*RUN)
def run_index(body: kopf.Body, **_: Any) -> dict[Any, Any] | None:
    run = run_view(body)
    return dict(run_keys(run)) if run is not None else None


@kopf.index(*JOBS)
def job_index(body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return dict(job_keys(job_view(body)))


@kopf.index(*PODS)
def pod_index(body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return dict(pod_keys(pod_view(body)))


@kopf.index(*BATCH)
def batch_index(body: kopf.Body, **_: Any) -> dict[Any, Any] | None:
    batch = batch_view(body)
    return dict(batch_keys(batch)) if batch is not None else None


@kopf.on.startup()
async def attach_store(memo: kopf.Memo, **kwargs: Any) -> None:
    """Hand the (pre-created, still filling) indexes to the controller."""
    memo.ctx.attach(
        Store(
            kwargs["connection_index"],
            kwargs["run_index"],
            kwargs["job_index"],
            kwargs["pod_index"],
            kwargs["batch_index"],
        )
    )


# ------------------------------------------------------------------ events → keys


def _ns_name(body: kopf.Body) -> tuple[str, str]:
    return str(body.metadata.namespace), str(body.metadata.name)


@kopf.on.event(*CONNECTION)
async def connection_event(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    ns, name = _ns_name(body)
    memo.ctx.add(("conn", ns, name))


@kopf.on.event(*RUN)
async def run_event(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    ns = str(body.metadata.namespace)
    connection = body.spec.get("connectionName")
    if connection:
        memo.ctx.add(("conn", ns, connection))
    batch = body.metadata.labels.get(LABEL_BATCH)
    if batch:
        memo.ctx.add(("batch", ns, batch))


@kopf.on.event(*JOBS)
async def job_event(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    connection = body.metadata.labels.get(LABEL_CONNECTION)
    if connection:
        memo.ctx.add(("conn", str(body.metadata.namespace), connection))


@kopf.on.event(*PODS)
async def pod_event(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    connection = body.metadata.labels.get(LABEL_CONNECTION)
    if connection:
        memo.ctx.add(("conn", str(body.metadata.namespace), connection))


@kopf.on.event(*BATCH)
async def batch_event(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    ns, name = _ns_name(body)
    memo.ctx.add(("batch", ns, name))


def quiet_kopf_logs(level: int) -> None:
    if level > logging.DEBUG:
        # kopf logs every handler call at INFO; our own log lines say what happened.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
