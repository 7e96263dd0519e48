"""OAuth 2.0 with a rotating refresh token (``auth: {type: oauth2_refresh}`` and Xero): where the
client credentials and the refresh token live, and the names by which the apiserver lets a
connection's runner write back a rotated refresh token (docs/security.md, "Rotated tokens").

The Secret holds three keys: ``client_id``, ``client_secret`` and ``refresh_token``. It must be
annotated ``datapipelines.io/oauth2-connection: <connection name>``: the runner pods of that
connection (and of no other) run as the ServiceAccount ``dp-oauth2-<connection>``, which the
operator creates for it, and an admission policy lets that identity change only the
``refresh_token`` key of a Secret so annotated for its connection.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from . import GROUP
from .meta import DNS_SUBDOMAIN, K8sModel, SecretRef

#: The keys of an OAuth 2.0 Secret.
CLIENT_ID_KEY, CLIENT_SECRET_KEY, REFRESH_TOKEN_KEY = "client_id", "client_secret", "refresh_token"
#: The annotation naming the one connection whose runner may rotate a Secret's refresh token.
CONNECTION_ANNOTATION = f"{GROUP}/oauth2-connection"
#: Annotations the runner writes beside a rotated token (when, and which run).
ROTATED_AT_ANNOTATION = f"{GROUP}/oauth2-rotated-at"
ROTATED_BY_ANNOTATION = f"{GROUP}/oauth2-rotated-by-run"
#: A connection's rotating runner identity: ``dp-oauth2-<connection>``.
RUNNER_ACCOUNT_PREFIX = "dp-oauth2-"


def runner_account(connection: str) -> str:
    """The ServiceAccount (and RoleBinding) name of ``connection``'s token-rotating runner."""
    return f"{RUNNER_ACCOUNT_PREFIX}{connection}"


def oauth2_secret_name() -> Any:
    return Field(
        max_length=253,
        pattern=DNS_SUBDOMAIN,
        description="The Secret with client_id, client_secret and refresh_token, annotated "
        "datapipelines.io/oauth2-connection: <this connection's name>.",
    )


def oauth2_token_url(default: str | None, description: str) -> Any:
    kwargs: dict[str, Any] = {} if default is None else {"default": default}
    return Field(max_length=2048, pattern=r"^https?://[^\s]+$", description=description, **kwargs)


class OAuth2Refresh(K8sModel):
    """OAuth 2.0 refresh-token grant with rotation: at the start of a run (and once on a 401)
    the runner trades the refresh token for an access token and writes the new refresh token
    back to the Secret before the first data request."""

    secret_name: str = oauth2_secret_name()
    token_url: str = oauth2_token_url(
        None,
        "The token endpoint (grant_type=refresh_token, client credentials as HTTP Basic).",
    )
    scope: str | None = Field(
        default=None,
        max_length=2048,
        description="Scopes to ask for on refresh (default: those of the grant).",
    )

    def secret_refs(self) -> list[SecretRef]:
        return [
            SecretRef(name=self.secret_name, key=k)
            for k in (CLIENT_ID_KEY, CLIENT_SECRET_KEY, REFRESH_TOKEN_KEY)
        ]
