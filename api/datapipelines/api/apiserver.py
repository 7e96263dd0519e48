"""A thin asynchronous apiserver client: JSON over aiohttp, the paths the API uses, nothing else.

The API reads and writes a handful of resources as plain JSON (custom objects, Jobs, pods and
their logs); a generated client's models (kubernetes_asyncio: ~35 MB imported, every object
turned into model instances) buy it nothing. Configuration the way client-go finds it: a
kubeconfig (current context; CA, client certificate and key, token or token file, as files or
inline data) or the pod's service account in a cluster (token re-read every minute: projected
tokens rotate). Exec and auth-provider plugins are not supported (the error says so).
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import tempfile
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

from datapipelines.resources.incluster import SERVICE_ACCOUNT_DIR, in_cluster_url

Obj = dict[str, Any]
Params = Mapping[str, str | int | bool | None]
JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"
TOKEN_REREAD_SECONDS = 60.0
POOL_SIZE = 100  # open connections; each watch holds one (HTTP/1.1)
#: what a request raises when the apiserver was not reached or answered no JSON
TRANSPORT_ERRORS: tuple[type[Exception], ...] = (
    TimeoutError,
    aiohttp.ClientError,
    OSError,
    ValueError,
)


class ApiServerError(Exception):
    """The apiserver answered with an error status; `message` is its Status's message."""

    def __init__(self, status: int, reason: str = "", body: str = "") -> None:
        super().__init__(f"{status} {reason}".strip())
        self.status = status
        self.reason = reason
        self.body = body

    @property
    def message(self) -> str:
        try:
            return str(json.loads(self.body or "{}").get("message") or self.reason)
        except (TypeError, ValueError, AttributeError):
            return self.reason


#: what a request raises: an error status, or the apiserver not reached / no JSON answered
REQUEST_ERRORS: tuple[type[Exception], ...] = (ApiServerError, *TRANSPORT_ERRORS)


class ConfigurationError(Exception):
    """No usable client configuration (missing file, unsupported kubeconfig)."""


@dataclass
class ClusterConfig:
    """Where the apiserver is and how to authenticate to it."""

    server: str
    ca_file: str | None = None
    insecure: bool = False
    cert_file: str | None = None
    key_file: str | None = None
    token: str | None = None
    token_file: str | None = None
    _token_read_at: float = field(default=0.0, repr=False)

    def ssl_context(self) -> ssl.SSLContext | bool:
        if not self.server.startswith("https://"):
            return False
        ctx = ssl.create_default_context(cafile=self.ca_file)
        if self.insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if self.cert_file:
            ctx.load_cert_chain(self.cert_file, self.key_file)
        return ctx

    def bearer(self) -> str | None:
        """The token, re-read from its file at most once a minute."""
        if self.token_file and (
            self.token is None or time.monotonic() - self._token_read_at > TOKEN_REREAD_SECONDS
        ):
            self.token = Path(self.token_file).read_text(encoding="utf-8").strip()
            self._token_read_at = time.monotonic()
        return self.token


def in_cluster_config(
    environ: Mapping[str, str] | None = None, sa_dir: str = SERVICE_ACCOUNT_DIR
) -> ClusterConfig:
    server = in_cluster_url(environ)
    if server is None:
        raise ConfigurationError("not in a cluster: KUBERNETES_SERVICE_HOST is not set")
    token = Path(sa_dir) / "token"
    if not token.exists():
        raise ConfigurationError(f"no service account token at {token}")
    ca = Path(sa_dir) / "ca.crt"
    return ClusterConfig(server, ca_file=str(ca) if ca.exists() else None, token_file=str(token))


def _named(entries: Any, name: str | None, what: str) -> dict[str, Any]:
    for entry in entries or []:
        if isinstance(entry, dict) and entry.get("name") == name:
            return dict(entry.get(what) or {})
    raise ConfigurationError(f"kubeconfig has no {what} named {name!r}")


def _file_or_data(section: Mapping[str, Any], key: str, base: Path) -> str | None:
    """A path for `key` (relative to the kubeconfig's directory) or for its inline `-data`."""
    if section.get(f"{key}-data"):
        data = base64.b64decode(section[f"{key}-data"])
        handle = tempfile.NamedTemporaryFile(prefix="dp-kube-", delete=False)  # noqa: SIM115
        with handle:
            handle.write(data)
        os.chmod(handle.name, 0o600)
        return handle.name
    value = section.get(key)
    if not value:
        return None
    path = Path(str(value)).expanduser()
    return str(path if path.is_absolute() else base / path)


def kubeconfig_config(path: str | os.PathLike[str], context: str | None = None) -> ClusterConfig:
    """The current (or named) context of a kubeconfig file."""
    import yaml

    file = Path(path).expanduser()
    try:
        doc = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ConfigurationError(f"cannot read kubeconfig {file}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"kubeconfig {file} is not valid YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise ConfigurationError(f"kubeconfig {file} is not a mapping")
    ctx = _named(doc.get("contexts"), context or doc.get("current-context"), "context")
    cluster = _named(doc.get("clusters"), ctx.get("cluster"), "cluster")
    user = _named(doc.get("users"), ctx.get("user"), "user") if ctx.get("user") else {}
    for unsupported in ("exec", "auth-provider"):
        if user.get(unsupported):
            raise ConfigurationError(
                f"kubeconfig {file}: `{unsupported}` credentials are not supported; "
                "use a client certificate or a token"
            )
    base = file.parent
    server = cluster.get("server")
    if not server:
        raise ConfigurationError(f"kubeconfig {file}: the cluster has no server")
    return ClusterConfig(
        server=str(server).rstrip("/"),
        ca_file=_file_or_data(cluster, "certificate-authority", base),
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
        cert_file=_file_or_data(user, "client-certificate", base),
        key_file=_file_or_data(user, "client-key", base),
        token=user.get("token") or None,
        token_file=_file_or_data(user, "tokenFile", base),
    )


def custom_path(
    group: str, version: str, plural: str, namespace: str | None = None, name: str | None = None
) -> str:
    where = f"/namespaces/{quote(namespace)}" if namespace else ""
    tail = f"/{quote(name)}" if name else ""
    return f"/apis/{group}/{version}{where}/{plural}{tail}"


def core_path(
    group_version: str, plural: str, namespace: str, name: str | None = None, sub: str = ""
) -> str:
    """`/api/v1/...` for the core group, `/apis/<group>/<version>/...` otherwise."""
    root = "/api/v1" if group_version == "v1" else f"/apis/{group_version}"
    tail = f"/{quote(name)}" if name else ""
    return f"{root}/namespaces/{quote(namespace)}/{plural}{tail}{'/' + sub if sub else ''}"


def timeout_of(connect: float, read: float, total: float | None = None) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(sock_connect=connect, sock_read=read, total=total)


def _query(params: Params | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in (params or {}).items():
        if value is None:
            continue
        out[key] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return out


#: The status code of the last answer this task received (for the request counter's `code`).
LAST_STATUS: ContextVar[int] = ContextVar("apiserver_last_status", default=0)


class ApiServer:
    """Requests to one apiserver over one connection pool (made on first use, in the loop)."""

    def __init__(self, config: ClusterConfig) -> None:
        self.config = config
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=self.config.ssl_context(), limit=POOL_SIZE)
            self._session = aiohttp.ClientSession(connector=connector, raise_for_status=False)
        return self._session

    def _headers(self, content_type: str | None, accept: str = JSON) -> dict[str, str]:
        headers = {"Accept": accept}
        if content_type:
            headers["Content-Type"] = content_type
        token = self.config.bearer()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return headers

    async def request(self, method: str, path: str, **kw: Any) -> Obj:
        """The JSON answer (`request_text`'s arguments); ApiServerError for an error status."""
        text = await self.request_text(method, path, **kw)
        answer = json.loads(text) if text else {}
        if not isinstance(answer, dict):
            raise ApiServerError(500, "the apiserver answered JSON that is not an object")
        return answer

    async def request_text(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        body: Obj | None = None,
        content_type: str = JSON,
        deadline: aiohttp.ClientTimeout,
        accept: str = JSON,
    ) -> str:
        data = None if body is None else json.dumps(body)
        async with self._http().request(
            method,
            self.config.server + path,
            params=_query(params),
            data=data,
            headers=self._headers(content_type if data is not None else None, accept),
            timeout=deadline,
        ) as resp:
            LAST_STATUS.set(resp.status)
            text = await resp.text(errors="replace")
            if not 200 <= resp.status <= 299:
                raise ApiServerError(resp.status, resp.reason or "", text)
            return text

    async def get(self, path: str, params: Params | None = None, **kw: Any) -> Obj:
        return await self.request("GET", path, params=params, **kw)

    @asynccontextmanager
    async def stream(
        self, path: str, params: Params | None, deadline: aiohttp.ClientTimeout
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        """A watch: the response body's chunks as they come; ApiServerError on an error status."""
        async with self._http().get(
            self.config.server + path,
            params=_query(params),
            headers=self._headers(None),
            timeout=deadline,
        ) as resp:
            if not 200 <= resp.status <= 299:
                body = (await resp.read()).decode(errors="replace")[:2000]
                raise ApiServerError(resp.status, resp.reason or "", body)
            yield resp.content.iter_any()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
