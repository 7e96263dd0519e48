"""Every Kubernetes API call of the operator, with explicit "tolerate 404 / 409" flags.

Objects go in and come out as plain dicts exactly as the apiserver serves them (camelCase,
RFC 3339 ``Z`` times), so the pure modules see the same shapes as ``kubectl get -o json``.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from datapipelines.resources import (
    BATCH_PLURAL,
    CONNECTION_PLURAL,
    GROUP,
    LABEL_BATCH,
    LABEL_RUN,
    RUN_PLURAL,
    VERSION,
)

log = logging.getLogger(__name__)

MERGE_PATCH = "application/merge-patch+json"
_OBJECT = {code: "object" for code in (200, 201, 202)}


class Kube:
    """A thin async REST client over one ``kubernetes_asyncio`` ApiClient."""

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api

    @classmethod
    async def connect(cls, kubeconfig: str = "") -> Kube:
        """In-cluster config, else the kubeconfig file (``kubeconfig`` or ``$KUBECONFIG``)."""
        cfg = client.Configuration()
        if kubeconfig:
            await config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
        else:
            try:
                config.load_incluster_config(client_configuration=cfg)
            except config.ConfigException:
                await config.load_kube_config(client_configuration=cfg)
        return cls(client.ApiClient(configuration=cfg))

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
        tolerate_404: bool = False,
        tolerate_409: bool = False,
    ) -> dict[str, Any] | None:
        """One call; returns the response object, or None for a tolerated 404/409."""
        try:
            return await self.api.call_api(
                path,
                method,
                query_params=[(k, v) for k, v in (query or {}).items() if v is not None],
                header_params={"Accept": "application/json", "Content-Type": content_type},
                body=body,
                response_types_map=_OBJECT,
                auth_settings=["BearerToken"],
                _return_http_data_only=True,
            )
        except ApiException as exc:
            if (exc.status == 404 and tolerate_404) or (exc.status == 409 and tolerate_409):
                return None
            raise

    @staticmethod
    def _custom(ns: str, plural: str, name: str | None = None, sub: str | None = None) -> str:
        path = f"/apis/{GROUP}/{VERSION}/namespaces/{quote(ns)}/{plural}"
        if name:
            path += f"/{quote(name)}"
        if sub:
            path += f"/{sub}"
        return path

    # ------------------------------------------------------------------ custom resources

    async def get(
        self, ns: str, plural: str, name: str, *, tolerate_404: bool = True
    ) -> dict[str, Any] | None:
        return await self.request("GET", self._custom(ns, plural, name), tolerate_404=tolerate_404)

    async def list_objects(
        self,
        ns: str,
        plural: str,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[dict[str, Any]]:
        result = await self.request(
            "GET",
            self._custom(ns, plural),
            query={"labelSelector": label_selector, "fieldSelector": field_selector},
        )
        return list((result or {}).get("items") or [])

    async def create(
        self, ns: str, plural: str, body: dict[str, Any], *, tolerate_409: bool = False
    ) -> dict[str, Any] | None:
        return await self.request(
            "POST", self._custom(ns, plural), body=body, tolerate_409=tolerate_409
        )

    async def patch(
        self, ns: str, plural: str, name: str, body: dict[str, Any], *, tolerate_404: bool = True
    ) -> dict[str, Any] | None:
        """Merge-patch of spec/metadata."""
        return await self.request(
            "PATCH",
            self._custom(ns, plural, name),
            body=body,
            content_type=MERGE_PATCH,
            tolerate_404=tolerate_404,
        )

    async def patch_status(
        self, ns: str, plural: str, name: str, status: dict[str, Any], *, tolerate_404: bool = True
    ) -> dict[str, Any] | None:
        """Merge-patch of ``/status`` (None values remove keys)."""
        return await self.request(
            "PATCH",
            self._custom(ns, plural, name, "status"),
            body={"status": status},
            content_type=MERGE_PATCH,
            tolerate_404=tolerate_404,
        )

    async def delete(
        self, ns: str, plural: str, name: str, *, tolerate_404: bool = True
    ) -> dict[str, Any] | None:
        return await self.request(
            "DELETE", self._custom(ns, plural, name), tolerate_404=tolerate_404
        )

    # shorthands
    async def get_run(self, ns: str, name: str) -> dict[str, Any] | None:
        return await self.get(ns, RUN_PLURAL, name)

    async def get_connection(self, ns: str, name: str) -> dict[str, Any] | None:
        return await self.get(ns, CONNECTION_PLURAL, name)

    async def get_batch(self, ns: str, name: str) -> dict[str, Any] | None:
        return await self.get(ns, BATCH_PLURAL, name)

    async def runs_of_connection(self, ns: str, connection: str) -> list[dict[str, Any]]:
        """Runs by ``spec.connectionName`` (a CRD selectable field), so unlabelled runs count."""
        return await self.list_objects(
            ns, RUN_PLURAL, field_selector=f"spec.connectionName={connection}"
        )

    async def runs_of_batch(self, ns: str, batch: str) -> list[dict[str, Any]]:
        return await self.list_objects(ns, RUN_PLURAL, label_selector=f"{LABEL_BATCH}={batch}")

    # ------------------------------------------------------------------ Jobs and pods

    async def get_job(self, ns: str, name: str) -> dict[str, Any] | None:
        return await self.request(
            "GET", f"/apis/batch/v1/namespaces/{quote(ns)}/jobs/{quote(name)}", tolerate_404=True
        )

    async def create_job(
        self, ns: str, body: dict[str, Any], *, tolerate_409: bool = True
    ) -> dict[str, Any] | None:
        return await self.request(
            "POST",
            f"/apis/batch/v1/namespaces/{quote(ns)}/jobs",
            body=body,
            tolerate_409=tolerate_409,
        )

    async def delete_job(self, ns: str, name: str, *, tolerate_404: bool = True) -> bool:
        """Delete a Job and (in the background) its pods. False if it was already gone."""
        result = await self.request(
            "DELETE",
            f"/apis/batch/v1/namespaces/{quote(ns)}/jobs/{quote(name)}",
            body={"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"},
            tolerate_404=tolerate_404,
        )
        return result is not None

    async def pods_of_run(self, ns: str, run: str) -> list[dict[str, Any]]:
        result = await self.request(
            "GET",
            f"/api/v1/namespaces/{quote(ns)}/pods",
            query={"labelSelector": f"{LABEL_RUN}={run}"},
        )
        return list((result or {}).get("items") or [])

    # ------------------------------------------------------------------ Leases

    def _lease(self, ns: str, name: str | None = None) -> str:
        path = f"/apis/coordination.k8s.io/v1/namespaces/{quote(ns)}/leases"
        return f"{path}/{quote(name)}" if name else path

    async def get_lease(self, ns: str, name: str) -> dict[str, Any] | None:
        return await self.request("GET", self._lease(ns, name), tolerate_404=True)

    async def create_lease(self, ns: str, body: dict[str, Any]) -> dict[str, Any] | None:
        return await self.request("POST", self._lease(ns), body=body, tolerate_409=True)

    async def replace_lease(self, ns: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """PUT with the body's resourceVersion; None when someone else updated it first."""
        return await self.request(
            "PUT", self._lease(ns, body["metadata"]["name"]), body=body, tolerate_409=True
        )
