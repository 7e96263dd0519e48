"""The HTTP session of rest_api sources: dlt's own (its retries, timeouts and back-off), plus
fixes of per-request overhead measured with `make bench`.

* dlt's rest_api parses every response body twice (the paginator reads `total_path`, then the
  data selector reads the records) with `requests`' JSON decoder (simplejson when installed).
  The session's transport adapter makes `response.json()` parse it once, with the standard
  library's decoder (C, faster than simplejson; the same values: integers of any size, NaN),
  and hand both the same result. (orjson is faster still but turns integers beyond 64 bits
  into floats. A session response hook would not do: dlt's client sends its own request
  hooks, which replace the session's.)
* The first page may already be on its way (prefetch.py): the adapter hands dlt that response
  when dlt sends the same request.
* dlt compiles the data selector's JSONPath again for every page (jsonpath-ng's parser, ~2 ms);
  `cache_jsonpath_compilation()` memoizes it.
"""

from __future__ import annotations

import functools
import weakref
from json import loads as json_loads
from typing import Any

from . import prefetch


def parse_json_once(response: Any) -> Any:
    """`response.json()` parses the body once (bytes: UTF-8/16/32 detected as RFC 8259 says).

    The replacement holds the response only weakly: a reference cycle would keep every page
    alive until the cyclic garbage collector runs (memory growing with the number of pages)."""
    ref = weakref.ref(response)
    parsed: list[Any] = []

    def json(**kw: Any) -> Any:
        this = ref()
        assert this is not None
        if kw:
            return type(this).json(this, **kw)
        if not parsed:
            try:
                parsed.append(json_loads(this.content))
            except ValueError:  # not JSON: requests' decoder raises its own error type
                parsed.append(type(this).json(this))
        return parsed[0]

    response.json = json
    return response


def session() -> Any:
    """dlt's retrying session (`RUNTIME__REQUEST_*` settings) whose responses parse once."""
    from dlt.sources.helpers.requests import Client
    from requests.adapters import HTTPAdapter

    class ParseOnceAdapter(HTTPAdapter):
        def build_response(self, req: Any, resp: Any) -> Any:
            return parse_json_once(super().build_response(req, resp))

        def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
            prefetched = prefetch.claim(request)
            if prefetched is not None:
                prefetched.connection = self
                return parse_json_once(prefetched)
            return super().send(request, *args, **kwargs)

    http = Client(raise_for_status=False).session
    for prefix in ("http://", "https://"):
        http.mount(prefix, ParseOnceAdapter())
    return http


def cache_jsonpath_compilation() -> None:
    """Memoizes dlt's `compile_path` (idempotent). Compiled paths are immutable: sharing is safe."""
    from dlt.common import jsonpath

    if getattr(jsonpath.compile_path, "_datapipelines_cached", False):
        return
    original = jsonpath.compile_path
    cached = functools.lru_cache(maxsize=256)(original)

    def compile_path(s: Any) -> Any:
        return cached(s) if isinstance(s, str) else original(s)

    compile_path._datapipelines_cached = True  # type: ignore[attr-defined]
    jsonpath.compile_path = compile_path
