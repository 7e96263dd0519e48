"""OAuth 2.0 with a rotating refresh token, once per run: check that the rotated token can be
stored, trade the refresh token for an access token, store the new refresh token, and only then
send the first data request; on a 401 later in the run, the same once more.

Where the new refresh token goes (a ``TokenStore``): in a cluster, the connection's Secret,
JSON-patched with a ``test`` of the token this run used (a compare-and-swap: a Secret someone
else rotated meanwhile is never overwritten) as the connection's own ServiceAccount, which the
apiserver lets change only that key of only that Secret (docs/security.md); run by hand, the
secret file itself. The store is tried with a dry run before the token is spent, so a Secret
the runner may not write fails the run with the old token still valid.
"""

from __future__ import annotations

import base64
import logging
import os
import tempfile
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from requests.auth import AuthBase

from datapipelines.resources.meta import SecretRef
from datapipelines.resources.oauth2 import (
    CLIENT_ID_KEY,
    CLIENT_SECRET_KEY,
    CONNECTION_ANNOTATION,
    REFRESH_TOKEN_KEY,
    ROTATED_AT_ANNOTATION,
    ROTATED_BY_ANNOTATION,
    OAuth2Refresh,
)

from . import secrets
from .errors import EXIT_BAD_CONFIG, RunnerError
from .kube import ApiClient, ApiError

log = logging.getLogger(__name__)

REAUTHORISE = "authorise again and store the new refresh token in the Secret (docs/oauth2.md)"


class CredentialsError(RunnerError):
    kind = "bad credentials"
    exit_code = EXIT_BAD_CONFIG


class TokenStoreError(RunnerError):
    """The rotated token could not be stored (or would not be: found by the dry run)."""

    kind = "bad credentials"


class TokenStore(Protocol):
    def swap(self, old: str, new: str, *, dry_run: bool = False) -> None:
        """Replace ``old`` with ``new``, or raise TokenStoreError if the store no longer holds
        ``old`` or may not be written."""


def _escape(name: str) -> str:
    """A JSON pointer segment (RFC 6901)."""
    return name.replace("~", "~0").replace("/", "~1")


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class SecretTokenStore:
    """The connection's Secret, through the apiserver."""

    def __init__(
        self, api: ApiClient, namespace: str, secret: str, connection: str, run: str
    ) -> None:
        self.api, self.secret, self.connection, self.run = api, secret, connection, run
        self.path = f"/api/v1/namespaces/{namespace}/secrets/{secret}"

    def patch_body(self, old: str, new: str) -> list[dict[str, Any]]:
        annotations = "/metadata/annotations/"
        return [
            {"op": "test", "path": f"/data/{REFRESH_TOKEN_KEY}", "value": _b64(old)},
            {"op": "replace", "path": f"/data/{REFRESH_TOKEN_KEY}", "value": _b64(new)},
            {
                "op": "add",
                "path": annotations + _escape(ROTATED_AT_ANNOTATION),
                "value": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            },
            {"op": "add", "path": annotations + _escape(ROTATED_BY_ANNOTATION), "value": self.run},
        ]

    def swap(self, old: str, new: str, *, dry_run: bool = False) -> None:
        try:
            self.api.patch(
                self.path, self.patch_body(old, new), "application/json-patch+json", dry_run
            )
        except ApiError as exc:
            raise TokenStoreError(self._explain(exc, dry_run)) from None

    def _explain(self, exc: ApiError, dry_run: bool) -> str:
        where = f"Secret {self.secret}"
        lost = "" if dry_run else f"; the token this run obtained is lost: {REAUTHORISE}"
        if exc.status == 422 or (exc.status == 500 and "test" in str(exc)):
            return (
                f"the refresh token in {where} changed after this run's pod started (another run "
                f"or a person rotated it){lost or '; nothing was spent, the next run uses it'}"
            )
        if exc.status == 403:
            return (
                f"this run may not store the rotated refresh token in {where}: it must be "
                f"annotated {CONNECTION_ANNOTATION}={self.connection} and hold only "
                f"{CLIENT_ID_KEY}, {CLIENT_SECRET_KEY} and {REFRESH_TOKEN_KEY} as they were "
                f"({exc}){lost or '; the refresh token was not used'}"
            )
        if exc.status == 404:
            return f"{where} does not exist{lost}"
        return f"could not store the rotated refresh token in {where}: {exc}{lost}"


class FileTokenStore:
    """The secret file (a runner run by hand: its secrets directory is its own)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def swap(self, old: str, new: str, *, dry_run: bool = False) -> None:
        try:
            current = self.path.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise TokenStoreError(f"cannot read {self.path}: {exc}") from None
        if current != old:
            raise TokenStoreError(f"the refresh token in {self.path} changed during the run")
        if not os.access(self.path.parent, os.W_OK):
            raise TokenStoreError(
                f"cannot store the rotated refresh token: {self.path} is read-only"
            )
        if dry_run:
            return
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".refresh-")
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(new)
        os.replace(tmp, self.path)


@dataclass
class Tokens:
    access: str
    refresh: str


class Grant:
    """One connection's grant for this process: refreshed at most once per need."""

    def __init__(self, settings: OAuth2Refresh, store: TokenStore) -> None:
        self.settings = settings
        self.store = store
        self._lock = threading.Lock()
        self._tokens: Tokens | None = None
        self.refreshes = 0

    def _read(self, key: str) -> str:
        return secrets.read(SecretRef(name=self.settings.secret_name, key=key))

    def access_token(self) -> str:
        with self._lock:
            if self._tokens is None:
                self._tokens = self._refresh(self._read(REFRESH_TOKEN_KEY))
            return self._tokens.access

    def refresh_after(self, rejected: str) -> str:
        """A new access token after ``rejected`` got a 401 (once: a second 401 stands)."""
        with self._lock:
            if self._tokens is not None and self._tokens.access != rejected:
                return self._tokens.access  # another thread refreshed already
            refresh = self._tokens.refresh if self._tokens else self._read(REFRESH_TOKEN_KEY)
            self._tokens = self._refresh(refresh)
            return self._tokens.access

    def _refresh(self, refresh_token: str) -> Tokens:
        from dlt.sources.helpers.requests import Client

        settings = self.settings
        self.store.swap(refresh_token, refresh_token, dry_run=True)  # may we store it at all?
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        if settings.scope:
            form["scope"] = settings.scope
        session = Client(raise_for_status=False).session
        response = session.post(
            settings.token_url,
            data=form,
            auth=(self._read(CLIENT_ID_KEY), self._read(CLIENT_SECRET_KEY)),
            headers={"Accept": "application/json"},
        )
        body: dict[str, Any] = {}
        try:
            parsed = response.json()
            body = parsed if isinstance(parsed, dict) else {}
        except ValueError:
            pass
        error = str(body.get("error") or "")
        where = f"the token endpoint {settings.token_url}"
        if response.status_code in (400, 401) and error == "invalid_grant":
            raise CredentialsError(
                f"{where} refused the refresh token in Secret {settings.secret_name} "
                f"(invalid_grant): it was used already or has expired; {REAUTHORISE}"
            )
        if response.status_code in (400, 401) and error in (
            "invalid_client",
            "unauthorized_client",
        ):
            raise CredentialsError(
                f"{where} refused the client_id/client_secret in Secret {settings.secret_name} "
                f"({error})"
            )
        if response.status_code != 200 or not body.get("access_token"):
            raise RunnerError(
                f"source HTTP {response.status_code}: {where} answered {error or 'no access token'}"
            )
        new_refresh = str(body.get("refresh_token") or refresh_token)
        secrets.remember(new_refresh)  # never in a report, log or status
        secrets.remember(str(body["access_token"]))
        if new_refresh != refresh_token:
            self.store.swap(refresh_token, new_refresh)
        self.refreshes += 1
        log.info("OAuth 2.0 access token refreshed; refresh token rotated and stored")
        return Tokens(str(body["access_token"]), new_refresh)


class BearerAuth(AuthBase):
    """A requests auth: the grant's access token as ``Authorization: Bearer``; on a 401 the
    request is sent once more with a refreshed token. Shared, never copied (dlt deep-copies its
    config; a copy would refresh again)."""

    grant: Grant

    def __deepcopy__(self, memo: dict[int, Any]) -> BearerAuth:
        return self

    def __call__(self, request: Any) -> Any:
        request.headers["Authorization"] = f"Bearer {self.grant.access_token()}"
        request.register_hook("response", self._on_response)
        return request

    def _on_response(self, response: Any, **kwargs: Any) -> Any:
        if response.status_code != 401 or getattr(response.request, "_dp_retried", False):
            return response
        rejected = response.request.headers.get("Authorization", "").removeprefix("Bearer ")
        token = self.grant.refresh_after(rejected)
        response.content  # noqa: B018  (read it, so the connection can be reused)
        response.close()
        retry = response.request.copy()
        retry.headers["Authorization"] = f"Bearer {token}"
        retry._dp_retried = True
        sent = response.connection.send(retry, **kwargs)
        sent.history.append(response)
        sent.request = retry
        return sent


def dlt_auth(grant: Grant) -> Any:
    """``BearerAuth`` as the auth object dlt's rest_api config accepts (an AuthConfigBase, a
    configspec: built after ``import dlt``)."""
    from dlt.common.configuration import configspec
    from dlt.sources.helpers.rest_client.auth import AuthConfigBase

    global _DltBearerAuth
    if _DltBearerAuth is None:

        @configspec
        class OAuth2RefreshAuth(BearerAuth, AuthConfigBase):  # type: ignore[misc]
            pass

        _DltBearerAuth = OAuth2RefreshAuth
    auth = _DltBearerAuth()
    auth.grant = grant
    return auth


_DltBearerAuth: Any = None
_grants: dict[str, Grant] = {}
_grants_lock = threading.Lock()


def store_for(settings: OAuth2Refresh, api: ApiClient | None, env: Any) -> TokenStore:
    if api is not None and env.namespace and env.connection_name:
        return SecretTokenStore(
            api, env.namespace, settings.secret_name, env.connection_name, env.run_name or ""
        )
    return FileTokenStore(
        secrets.path_for(SecretRef(name=settings.secret_name, key=REFRESH_TOKEN_KEY))
    )


def grant(settings: OAuth2Refresh) -> Grant:
    """This process's grant for ``settings`` (one per Secret)."""
    from .config import RunnerEnv

    with _grants_lock:
        found = _grants.get(settings.secret_name)
        if found is None:
            env = RunnerEnv.from_environ()
            found = Grant(settings, store_for(settings, ApiClient.from_env(env), env))
            _grants[settings.secret_name] = found
        return found


def forget() -> None:
    """Drop this process's grants (one run per process in a pod; several in tests)."""
    with _grants_lock:
        _grants.clear()
