"""The authorization-code step of OAuth 2.0, done once by a person outside the cluster: the
URL to open, the code traded for the first refresh token, and the Secret a token-rotating
connection reads (docs/oauth2.md). Pure but for the one token request."""

from __future__ import annotations

import secrets as random
from typing import Any
from urllib.parse import urlencode

import httpx

from datapipelines.cli.client import CliError
from datapipelines.resources.oauth2 import (
    CLIENT_ID_KEY,
    CLIENT_SECRET_KEY,
    CONNECTION_ANNOTATION,
    REFRESH_TOKEN_KEY,
)

XERO_AUTHORIZE_URL = "https://login.xero.com/identity/connect/authorize"
XERO_TOKEN_URL = "https://identity.xero.com/connect/token"
XERO_SCOPE = "offline_access accounting.transactions accounting.contacts accounting.settings"
EXIT_REFUSED = 4


def authorize_url(base: str, client_id: str, redirect_uri: str, scope: str) -> str:
    """Where the person signs in and consents; the provider then redirects to ``redirect_uri``
    with ``?code=…`` (``offline_access`` in the scope asks for a refresh token)."""
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": scope,
        "state": random.token_urlsafe(12),
    }
    return f"{base}?{urlencode(query)}"


def exchange_code(
    token_url: str, client_id: str, client_secret: str, code: str, redirect_uri: str
) -> str:
    """The refresh token the authorization code is worth (the code works once)."""
    try:
        response = httpx.post(
            token_url,
            data={"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri},
            auth=(client_id, client_secret),
            headers={"Accept": "application/json"},
            timeout=30,
        )
    except httpx.HTTPError as exc:
        raise CliError(f"the token endpoint {token_url} could not be reached: {exc}", 4) from None
    body: dict[str, Any] = {}
    try:
        parsed = response.json()
        body = parsed if isinstance(parsed, dict) else {}
    except ValueError:
        pass
    if response.status_code != 200 or not body.get("refresh_token"):
        error = body.get("error") or f"HTTP {response.status_code}"
        hint = (
            " (the code was used already, has expired, or the redirect URI differs)"
            if error == "invalid_grant"
            else " (ask for the offline_access scope)"
            if response.status_code == 200
            else ""
        )
        raise CliError(f"the token endpoint refused the code: {error}{hint}", EXIT_REFUSED)
    return str(body["refresh_token"])


def secret_manifest(
    name: str, connection: str, client_id: str, client_secret: str, refresh_token: str
) -> dict[str, Any]:
    """The Secret for ``kubectl apply -f -``, annotated for the one connection whose runner may
    rotate its refresh token."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "annotations": {CONNECTION_ANNOTATION: connection}},
        "type": "Opaque",
        "stringData": {
            CLIENT_ID_KEY: client_id,
            CLIENT_SECRET_KEY: client_secret,
            REFRESH_TOKEN_KEY: refresh_token,
        },
    }
