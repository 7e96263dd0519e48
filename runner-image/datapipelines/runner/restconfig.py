"""dlt's declarative rest_api config for a connection's `restApi` source, without importing dlt.

Pure apart from reading the secret files; used by the source builder (sources.py) and, before
dlt is imported, by the first-page prefetch (prefetch.py).
"""

from __future__ import annotations

import copy
from typing import Any

from datapipelines.resources.connection import (
    NULL_SPELLING,
    AuthType,
    RestApiAuth,
    RestApiSource,
    WriteDisposition,
)

from . import secrets
from .errors import ConfigError


def rest_api_auth(auth: RestApiAuth | None) -> Any:
    """dlt's auth config with the secret values read from their files; for oauth2_refresh a
    requests auth that refreshes (and rotates) the token before the first request."""
    if auth is None:
        return None
    if auth.type is AuthType.OAUTH2_REFRESH:
        from . import oauth2

        assert auth.oauth2 is not None
        return oauth2.dlt_auth(oauth2.grant(auth.oauth2))
    if auth.type is AuthType.BEARER:
        assert auth.token_secret_ref is not None
        return {"type": "bearer", "token": secrets.read(auth.token_secret_ref)}
    if auth.type is AuthType.API_KEY:
        assert auth.token_secret_ref is not None
        return {
            "type": "api_key",
            "name": auth.api_key_name,
            "api_key": secrets.read(auth.token_secret_ref),
            "location": str(auth.location),
        }
    assert auth.username_secret_ref is not None and auth.password_secret_ref is not None
    return {
        "type": "http_basic",
        "username": secrets.read(auth.username_secret_ref),
        "password": secrets.read(auth.password_secret_ref),
    }


def rest_api_config(src: RestApiSource, write_disposition: WriteDisposition) -> dict[str, Any]:
    """The declarative config for `dlt.sources.rest_api.rest_api_source` (pure apart from the
    secret files). The connection's writeDisposition is the default for every resource."""
    client: dict[str, Any] = {"base_url": src.base_url}
    auth = rest_api_auth(src.auth)
    if auth is not None:
        client["auth"] = auth
    defaults = nulls(copy.deepcopy(src.resource_defaults))
    defaults.setdefault("write_disposition", str(write_disposition))
    return {
        "client": client,
        "resource_defaults": defaults,
        "resources": [_endpoint_incremental(nulls(r)) for r in copy.deepcopy(src.resources)],
    }


def nulls(value: Any) -> Any:
    """``value`` with every ``"$null"`` (NULL_SPELLING) made an explicit None: the spelling of
    a null dlt needs (``total_path: null``) that ``kubectl apply`` does not drop."""
    if value == NULL_SPELLING:
        return None
    if isinstance(value, dict):
        return {k: nulls(v) for k, v in value.items()}
    if isinstance(value, list):
        return [nulls(v) for v in value]
    return value


def _endpoint_incremental(resource: dict[str, Any] | str) -> dict[str, Any] | str:
    """Accepts `incremental` on the resource (as in docs/contracts.md) and moves it where dlt
    expects it: `endpoint.incremental`."""
    if not isinstance(resource, dict) or "incremental" not in resource:
        return resource
    incremental = resource.pop("incremental")
    endpoint = resource.get("endpoint") or resource.get("name")
    if isinstance(endpoint, str):
        endpoint = {"path": endpoint}
    if not isinstance(endpoint, dict):
        raise ConfigError("restApi resource with incremental needs an endpoint")
    endpoint.setdefault("incremental", incremental)
    resource["endpoint"] = endpoint
    return resource
