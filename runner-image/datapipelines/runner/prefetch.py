"""The first page of a rest_api source, requested while dlt is still being imported.

Importing dlt is most of the runner's start-up (0.25-0.45 s on two shared cores) and nothing of
the sync can reach the source before it. But the first request of the connection's first
resource usually depends on nothing dlt computes: it is the base URL, the path, the declared
params, the paginator's first-page params and the auth header. `first_request` derives it from
the declarative config (pure); `start` sends it from a thread right after the spec is parsed;
the rest_api session's transport adapter (restclient.py) hands the response to dlt when dlt
sends exactly that request (same URL and headers) — dlt's paginator, data selector, response
actions and retries then work on it as on any response.

The derivation is conservative: it declines (None) whatever it cannot know before dlt runs —
an incremental cursor (its start value comes from the state restored from the destination),
a dependent resource (`{placeholders}`), a request body or headers, a method other than GET,
a paginator other than the ones below. A request dlt does not send exactly as derived is never
served; dlt sends its own (one extra GET at the source, logged). Not on a transport failure
either: dlt's session then sends its own, with its retries. `RUNNER__PREFETCH=false` turns it off.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

PREFETCH_ENV = "RUNNER__PREFETCH"

#: endpoint keys that do not change the first request (any other key: no prefetch)
_NEUTRAL_ENDPOINT_KEYS = frozenset({"path", "params", "method", "paginator", "data_selector"})
#: endpoint keys that only decide what is done with responses
_RESPONSE_KEYS = frozenset({"response_actions"})
#: paginators whose first request carries no params of theirs
_NO_FIRST_PAGE_PARAMS = frozenset({"auto", "single_page", "json_link", "header_link", "cursor"})
_SCALARS = (str, int, float, bool)


@dataclass(frozen=True)
class FirstRequest:
    """The GET dlt sends first for a resource: `params` in the order dlt adds them."""

    resource: str
    url: str
    params: tuple[tuple[str, Any], ...]
    auth: dict[str, Any] | None = None


def enabled(environ: dict[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    return env.get(PREFETCH_ENV, "true").strip().lower() not in ("0", "false", "no")


def join_url(base_url: str, path: str) -> str:
    """dlt's `join_url` (rest_client/utils.py)."""
    if base_url == "" or path.startswith(("http://", "https://")):
        return path
    if path == "":
        return base_url
    base = base_url.rstrip("/") + "/"
    return base + path.lstrip("/")


def _endpoint(resource: Any, defaults: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """(name, endpoint) of a resource merged with the defaults as dlt merges them."""
    endpoint: dict[str, Any]
    if isinstance(resource, str):
        name, endpoint = resource, {"path": resource}
    elif isinstance(resource, dict) and isinstance(resource.get("name"), str):
        name = resource["name"]
        raw = resource.get("endpoint", {})
        if not isinstance(raw, str | dict):
            return None
        endpoint = {"path": raw} if isinstance(raw, str) else dict(raw)
        endpoint.setdefault("path", name)
    else:
        return None
    default_endpoint = defaults.get("endpoint") or {}
    if not isinstance(default_endpoint, dict):
        return None
    merged = {**default_endpoint, **{k: v for k, v in endpoint.items() if k != "params"}}
    merged["params"] = {**(default_endpoint.get("params") or {}), **(endpoint.get("params") or {})}
    return name, merged


def _first_page_params(paginator: Any) -> list[tuple[str, Any]] | None:
    """The params a paginator adds to the first request; None when not known before dlt."""
    if paginator is None:
        return []
    if isinstance(paginator, str):
        if paginator in _NO_FIRST_PAGE_PARAMS:
            return []
        return [("page", 0)] if paginator == "page_number" else None
    if not isinstance(paginator, dict):
        return None
    kind = paginator.get("type")
    if kind in _NO_FIRST_PAGE_PARAMS:
        return [] if kind != "cursor" or "cursor_body_path" not in paginator else None
    if kind == "page_number" and not paginator.get("page_body_path"):
        page = paginator.get("page")
        first = page if page is not None else paginator.get("base_page", 0)
        return [(paginator.get("page_param") or "page", first)]
    if kind == "offset" and "limit" in paginator:
        if paginator.get("offset_body_path") or paginator.get("limit_body_path"):
            return None
        return [
            (paginator.get("offset_param") or "offset", paginator.get("offset", 0)),
            (paginator.get("limit_param") or "limit", paginator["limit"]),
        ]
    return None


def first_request(config: dict[str, Any]) -> FirstRequest | None:
    """dlt's first request for the config's first resource, or None when it depends on more
    than the config (see the module's docstring)."""
    client = config.get("client") or {}
    resources = config.get("resources") or []
    base_url = client.get("base_url")
    if not resources or not isinstance(base_url, str) or set(client) - {"base_url", "auth"}:
        return None
    auth = client.get("auth")
    if auth is not None and auth.get("type") not in ("bearer", "api_key", "http_basic"):
        return None
    if auth is not None and auth["type"] == "api_key" and auth.get("location") == "cookie":
        return None
    named = _endpoint(resources[0], config.get("resource_defaults") or {})
    if named is None:
        return None
    name, endpoint = named
    path, params = endpoint.get("path"), endpoint["params"]
    if set(endpoint) - _NEUTRAL_ENDPOINT_KEYS - _RESPONSE_KEYS or not isinstance(path, str):
        return None
    if str(endpoint.get("method", "GET")).upper() != "GET" or "{" in path:
        return None
    if not isinstance(params, dict):
        return None
    for key, value in params.items():
        if not isinstance(key, str) or not isinstance(value, _SCALARS):
            return None
        if isinstance(value, str) and "{" in value:
            return None
    paging = _first_page_params(endpoint.get("paginator"))
    if paging is None:
        return None
    ordered = dict(params)
    for key, value in paging:
        ordered[key] = value
    return FirstRequest(name, join_url(base_url, path), tuple(ordered.items()), auth)


def _apply_auth(prepared: Any, auth: dict[str, Any] | None) -> None:
    """What dlt's BearerTokenAuth, APIKeyAuth and HttpBasicAuth do to a prepared request."""
    if auth is None:
        return
    from base64 import b64encode

    if auth["type"] == "bearer":
        prepared.headers["Authorization"] = f"Bearer {auth['token']}"
    elif auth["type"] == "http_basic":
        encoded = b64encode(f"{auth['username']}:{auth['password']}".encode()).decode()
        prepared.headers["Authorization"] = f"Basic {encoded}"
    elif auth.get("location", "header") == "header":
        prepared.headers[auth["name"]] = auth["api_key"]
    else:
        prepared.prepare_url(prepared.url, {auth["name"]: auth["api_key"]})


def _user_agent() -> str:
    """The User-Agent dlt's session sends (`dlt/<version>`), without importing dlt."""
    from importlib.metadata import version

    return f"dlt/{version('dlt')}"


def _timeout() -> float:
    try:
        return float(os.environ.get("RUNTIME__REQUEST_TIMEOUT", "60"))
    except ValueError:
        return 60.0


class Prefetch:
    """One request sent from a thread; `claim` hands its response over once."""

    def __init__(self, request: FirstRequest) -> None:
        import requests

        self.request = request
        self._session = requests.Session()
        self._session.headers["User-Agent"] = _user_agent()
        prepared = self._session.prepare_request(
            requests.Request("GET", request.url, params=list(request.params))
        )
        _apply_auth(prepared, request.auth)
        self.prepared = prepared
        self._response: Any = None
        self._error: BaseException | None = None
        self._done = threading.Event()
        self._claimed = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._send, name="prefetch", daemon=True)

    def start(self) -> Prefetch:
        self._thread.start()
        return self

    def _send(self) -> None:
        try:
            settings = self._session.merge_environment_settings(
                self.prepared.url or "", {}, None, None, None
            )
            response = self._session.send(self.prepared, timeout=_timeout(), **settings)
            _ = response.content  # read whole here, as dlt's (non-streaming) session does
            self._response = response
        except BaseException as exc:  # dlt sends its own request instead
            self._error = exc
        finally:
            self._done.set()

    def matches(self, prepared: Any) -> bool:
        return (
            prepared.method == "GET"
            and prepared.url == self.prepared.url
            and prepared.body is None
            and dict(prepared.headers) == dict(self.prepared.headers)
        )

    def claim(self, prepared: Any) -> Any:
        """The prefetched response for `prepared` when it is the same request (once), else None."""
        with self._lock:
            if self._claimed or not self.matches(prepared):
                return None
            self._claimed = True
        self._done.wait(_timeout() + 5)
        if self._response is None:
            log.info("first page prefetch failed (%s); dlt requests it", type(self._error).__name__)
            return None
        response = self._response
        response.request = prepared
        self._response = None
        log.debug("the first page of %s was requested before dlt started", self.request.resource)
        return response

    @property
    def claimed(self) -> bool:
        return self._claimed


_current: Prefetch | None = None


def start(config: dict[str, Any]) -> Prefetch | None:
    """Sends the first request of `config` from a thread when it can be known now; never
    raises (without a prefetch, dlt sends every request itself)."""
    global _current
    if not enabled():
        return None
    try:
        request = first_request(config)
        if request is None:
            log.debug("no first page prefetch: the first request depends on dlt")
            return None
        _current = Prefetch(request).start()
    except Exception as exc:  # the sync reports its own config errors later
        log.debug("no first page prefetch: %s", type(exc).__name__)
        return None
    return _current


def claim(prepared: Any) -> Any:
    """For the session's adapter: the prefetched response to `prepared`, or None."""
    current = _current
    return None if current is None else current.claim(prepared)


def finish() -> None:
    """Forgets the prefetch; says so when dlt never sent the request it guessed."""
    global _current
    current, _current = _current, None
    if current is not None and not current.claimed:
        log.info(
            "the prefetched first page of %s was not used: dlt's first request differed",
            current.request.resource,
        )
