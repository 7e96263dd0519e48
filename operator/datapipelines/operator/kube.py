"""Every apiserver call of the operator: a deadline on each, a leadership check before each
write, the replica's own ``fieldManager`` on each create, update and patch (so an object's
managedFields say which replica wrote what, and when), and a count by verb and resource
(``datapipelines_operator_apiserver_requests_total``).

Objects go in and come out as plain dicts exactly as the apiserver serves them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import aiohttp
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException
from prometheus_client import Counter

from datapipelines.resources import GROUP, VERSION

log = logging.getLogger(__name__)

MERGE_PATCH = "application/merge-patch+json"
_OBJECT = {code: "object" for code in (200, 201, 202)}

REQUESTS = Counter(
    "datapipelines_operator_apiserver_requests_total",
    "Apiserver requests of the operator by verb, resource and HTTP status code (`error`: no "
    "answer, a transport failure or the deadline; kopf's list and watch requests included).",
    ["verb", "resource", "code"],
)

_PATH = re.compile(
    r"^/(?:api/v1|apis/[^/]+/[^/]+)(?:/namespaces/[^/]+)?/(?P<plural>[^/?]+)"
    r"(?:/(?P<name>[^/?]+))?(?:/(?P<sub>[^/?]+))?"
)


def verb_and_resource(method: str, path: str, watch: bool = False) -> tuple[str, str]:
    """The Kubernetes verb and resource of a request, as the apiserver's own metrics name them."""
    m = _PATH.match(path.split("?", 1)[0])
    if not m:
        return method.lower(), path.split("?", 1)[0]
    plural, name, sub = m.group("plural"), m.group("name"), m.group("sub")
    if plural == "namespaces" and name and sub:  # /api/v1/namespaces/<ns> itself
        plural, name, sub = name, None, None
    resource = f"{plural}/{sub}" if sub else plural
    method = method.upper()
    if method == "GET":
        verb = "watch" if watch else ("get" if name else "list")
    else:
        verb = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(
            method, method.lower()
        )
    return verb, resource


#: The apiserver's limit on a fieldManager (printable characters only).
FIELD_MANAGER_MAX = 128
FIELD_MANAGER_PREFIX = "datapipelines-operator"


def field_manager(identity: str) -> str:
    """The fieldManager of one replica's writes: ``datapipelines-operator/<identity>``, with
    non-printable characters dropped and cut to the apiserver's 128 characters."""
    name = f"{FIELD_MANAGER_PREFIX}/{identity}" if identity else FIELD_MANAGER_PREFIX
    return "".join(ch for ch in name if ch.isprintable())[:FIELD_MANAGER_MAX]


class NotLeading(Exception):
    """This replica may not write now (it lost, or never held, the Lease)."""


class TokenBucket:
    """Client-side rate limit of writes, as client-go's QPS and burst: on average `rate` per
    second, up to `burst` at once. A bulk change (10,000 connections applied at once, each
    getting its first status) then queues here instead of saturating the apiserver — where it
    would also slow the Lease renewals until the leader loses its Lease."""

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self.tokens = float(burst)
        self.last = clock()

    def reserve(self) -> float:
        """Take a token; the seconds to wait before using it (0 when one was there)."""
        now = self.clock()
        self.tokens = min(float(self.burst), self.tokens + (now - self.last) * self.rate)
        self.last = now
        self.tokens -= 1
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate

    async def acquire(self) -> None:
        if (wait := self.reserve()) > 0:
            await asyncio.sleep(wait)


class Kube:
    """A thin async REST client over one ``kubernetes_asyncio`` ApiClient."""

    def __init__(self, api: client.ApiClient, timeout: float = 10.0) -> None:
        self.api = api
        self.timeout = timeout
        self.guard: Callable[[], float | None] | None = None
        """Called before every write: raises NotLeading, or returns the seconds this replica
        may still write for (the write's deadline is cut to that)."""
        self.field_manager: str | None = None
        """Sent as ``fieldManager`` with every POST, PUT and PATCH (see :func:`field_manager`)."""
        self.limiter: TokenBucket | None = None
        """Paces every write; the Lease calls (``write=False``) and reads are not paced."""

    @classmethod
    async def connect(cls, kubeconfig: str = "", deadline: float = 10.0) -> Kube:
        """In-cluster config, else the kubeconfig file (``kubeconfig`` or ``$KUBECONFIG``)."""
        cfg = client.Configuration()
        if kubeconfig:
            await config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
        else:
            try:
                config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
            except config.ConfigException:
                await config.load_kube_config(client_configuration=cfg)
        return cls(client.ApiClient(configuration=cfg), deadline)

    async def close(self) -> None:
        await self.api.close()

    # ------------------------------------------------------------------ raw requests

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: dict[str, Any] | None = None,
        content_type: str = "application/json",
        tolerate: tuple[int, ...] = (),
        write: bool | None = None,
        deadline: float | None = None,
    ) -> dict[str, Any] | None:
        """One call with a deadline; the response object, or None for a tolerated status."""
        is_write = method.upper() != "GET" if write is None else write
        limit = deadline or self.timeout
        if is_write and self.limiter is not None:
            await self.limiter.acquire()  # before the leadership check: no write after a loss
        if is_write and self.guard is not None:
            left = self.guard()
            if left is not None:
                limit = min(limit, left)
        verb, resource = verb_and_resource(method, path)
        params = [(k, v) for k, v in (query or {}).items() if v is not None]
        if self.field_manager and method.upper() in ("POST", "PUT", "PATCH"):
            params.append(("fieldManager", self.field_manager))
        code = "error"  # no HTTP answer: a transport failure or the deadline
        try:
            result, status, _headers = await asyncio.wait_for(
                self.api.call_api(
                    path,
                    method,
                    query_params=params,
                    header_params={"Accept": "application/json", "Content-Type": content_type},
                    body=body,
                    response_types_map=_OBJECT,
                    auth_settings=["BearerToken"],
                    _return_http_data_only=False,
                    _request_timeout=aiohttp.ClientTimeout(total=limit),
                ),
                timeout=limit + 1,
            )
            code = str(status)
            return result  # type: ignore[no-any-return]
        except ApiException as exc:
            code = str(exc.status)
            if exc.status in tolerate:
                return None
            raise
        finally:
            REQUESTS.labels(verb, resource, code).inc()

    @staticmethod
    def custom(ns: str, plural: str, name: str | None = None, sub: str | None = None) -> str:
        path = f"/apis/{GROUP}/{VERSION}/namespaces/{quote(ns)}/{plural}"
        if name:
            path += f"/{quote(name)}"
        if sub:
            path += f"/{sub}"
        return path

    @staticmethod
    def jobs(ns: str, name: str | None = None) -> str:
        path = f"/apis/batch/v1/namespaces/{quote(ns)}/jobs"
        return f"{path}/{quote(name)}" if name else path

    # ------------------------------------------------------------------ writes

    async def create(self, ns: str, plural: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """Create; None when an object of that name exists (409)."""
        return await self.request("POST", self.custom(ns, plural), body=body, tolerate=(409,))

    async def patch_status(
        self,
        ns: str,
        plural: str,
        name: str,
        status: dict[str, Any],
        *,
        resource_version: str | None = None,
    ) -> dict[str, Any] | None:
        """Merge-patch ``/status`` (None values remove keys); with ``resource_version`` only if
        the object is still at that version (409 Conflict otherwise). None when it is gone."""
        body: dict[str, Any] = {"status": status}
        if resource_version:
            body["metadata"] = {"resourceVersion": resource_version}
        return await self.request(
            "PATCH",
            self.custom(ns, plural, name, "status"),
            body=body,
            content_type=MERGE_PATCH,
            tolerate=(404,),
        )

    async def delete(
        self, path: str, *, uid: str | None = None, propagation: str = "Background"
    ) -> bool:
        """Delete (only the object with ``uid``, if given); False when it was already gone."""
        options: dict[str, Any] = {
            "kind": "DeleteOptions",
            "apiVersion": "v1",
            "propagationPolicy": propagation,
        }
        if uid:
            options["preconditions"] = {"uid": uid}
        result = await self.request("DELETE", path, body=options, tolerate=(404,))
        return result is not None

    async def create_if_absent(self, body: dict[str, Any]) -> None:
        """Create a namespaced core or RBAC object (ServiceAccount, RoleBinding); an existing
        one of that name is left as it is."""
        kind, meta = body["kind"], body["metadata"]
        group = "/api/v1" if body["apiVersion"] == "v1" else f"/apis/{body['apiVersion']}"
        plural = {"ServiceAccount": "serviceaccounts", "RoleBinding": "rolebindings"}[kind]
        path = f"{group}/namespaces/{quote(meta['namespace'])}/{plural}"
        await self.request("POST", path, body=body, tolerate=(409,))

    async def create_job(self, ns: str, body: dict[str, Any]) -> dict[str, Any]:
        result = await self.request("POST", self.jobs(ns), body=body)
        assert result is not None
        return result

    async def post_event(self, ns: str, body: dict[str, Any]) -> None:
        await self.request("POST", f"/api/v1/namespaces/{quote(ns)}/events", body=body)

    # ------------------------------------------------------------------ Leases (no guard)

    def _lease(self, ns: str, name: str | None = None) -> str:
        path = f"/apis/coordination.k8s.io/v1/namespaces/{quote(ns)}/leases"
        return f"{path}/{quote(name)}" if name else path

    async def get_lease(self, ns: str, name: str, deadline: float) -> dict[str, Any] | None:
        return await self.request("GET", self._lease(ns, name), tolerate=(404,), deadline=deadline)

    async def create_lease(
        self, ns: str, body: dict[str, Any], deadline: float
    ) -> dict[str, Any] | None:
        return await self.request(
            "POST", self._lease(ns), body=body, tolerate=(409,), write=False, deadline=deadline
        )

    async def replace_lease(
        self, ns: str, body: dict[str, Any], deadline: float
    ) -> dict[str, Any] | None:
        """PUT with the body's resourceVersion; None when someone else updated it first."""
        return await self.request(
            "PUT",
            self._lease(ns, body["metadata"]["name"]),
            body=body,
            tolerate=(409,),
            write=False,
            deadline=deadline,
        )

    # ------------------------------------------------------------------ namespaces

    async def list_namespaces(self, label_selector: str, deadline: float) -> list[str]:
        result = await self.request(
            "GET", "/api/v1/namespaces", query={"labelSelector": label_selector}, deadline=deadline
        )
        return sorted(i["metadata"]["name"] for i in (result or {}).get("items") or [])


def api_error_message(exc: ApiException) -> str:
    """The apiserver's own message of a failed call."""
    try:
        return str(json.loads(exc.body or "{}").get("message") or exc.reason)
    except (TypeError, ValueError):
        return str(exc.reason)


def count_kopf_requests() -> None:
    """Count kopf's own apiserver requests (its lists and watches) in REQUESTS too.

    kopf sends every request through ``kopf._cogs.clients.api.request``; wrapping it is the only
    hook it offers. If a kopf release moves it, the count misses kopf's share (logged once)."""
    try:
        from kopf._cogs.clients import api as kopf_api
    except ImportError:  # pragma: no cover
        log.warning("cannot count kopf's apiserver requests: kopf's client moved")
        return
    original = kopf_api.request
    if getattr(original, "_datapipelines_counted", False):
        return

    async def counted(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        path = url.split("://", 1)[-1]
        path = path[path.find("/") :] if "://" in url else url
        verb, resource = verb_and_resource(method, path, watch="watch=" in url)
        try:
            response = await original(method, url, *args, **kwargs)
        except Exception:
            REQUESTS.labels(verb, resource, "error").inc()
            raise
        status = int(getattr(response, "status", 200))
        REQUESTS.labels(verb, resource, str(status)).inc()
        return response

    counted._datapipelines_counted = True  # type: ignore[attr-defined]
    kopf_api.request = counted
