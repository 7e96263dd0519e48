"""The REST API as the CLI sees it: one method per endpoint, errors as one-line `CliError`s."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from datapipelines.cli.config import KEY_ENV, TOKEN_ENV, URL_ENV, Target

EXIT_FAILED = 1  # a run (or a run of a batch) failed
EXIT_USAGE = 2  # click's own code for bad usage
EXIT_CANCELLED = 3  # a run or batch was cancelled
EXIT_API = 4  # the API could not be reached or refused the request
EXIT_INTERRUPTED = 130  # Ctrl-C while waiting (the run goes on)

TIMEOUT_SECONDS = 30.0


class CliError(Exception):
    """A failure to report in one line (no traceback), with the process exit code."""

    def __init__(self, message: str, code: int = EXIT_API) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class ApiClient:
    def __init__(self, target: Target, *, timeout: float = TIMEOUT_SECONDS) -> None:
        self.target = target
        headers = {"X-API-Key": target.key} if target.key else {}
        if target.token:
            headers = {"Authorization": f"Bearer {target.token}"}
        self._http = httpx.Client(base_url=target.url, headers=headers, timeout=timeout)
        self._timeout = timeout

    def close(self) -> None:
        self._http.close()

    # endpoints -------------------------------------------------------------------------------
    def connections(self, *, only_enabled: bool = False) -> list[dict[str, Any]]:
        if only_enabled:
            return self._json("GET", "/pipelines", params={"only_enabled": "true"})
        return self._json("GET", "/connections")

    def connection_status(self, name: str) -> dict[str, Any]:
        return self._json("GET", f"/connections/{_seg(name)}/status")

    def connection_schema(self, name: str) -> dict[str, Any]:
        return self._json("GET", f"/connections/{_seg(name)}/schema")

    def run_async(self, name: str, options: dict[str, str] | None = None) -> dict[str, Any]:
        """`options`: full_refresh, streams, since as the API's query parameters."""
        return self._json("POST", f"/connections/{_seg(name)}/run_async", params=options or None)

    def run_selected(self) -> dict[str, Any]:
        return self._json("POST", "/run_selected")

    def task_status(self, task_id: str) -> dict[str, Any]:
        return self._json("GET", f"/task_status/{_seg(task_id)}")

    def cancel(self, task_id: str) -> dict[str, Any]:
        return self._json("POST", f"/cancel_task/{_seg(task_id)}")

    def history(self, limit: int) -> tuple[list[dict[str, Any]], str | None]:
        resp = self._request("GET", "/history", params={"limit": limit})
        return resp.json(), resp.headers.get("X-DataPipelines-History-Archive")

    def run_logs(self, run_id: str, *, tail_lines: int | None) -> dict[str, Any]:
        params = {"tail_lines": tail_lines} if tail_lines else None
        return self._json("GET", f"/runs/{_seg(run_id)}/logs", params=params)

    # plumbing --------------------------------------------------------------------------------
    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._request(method, path, **kwargs).json()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            resp = self._http.request(method, path, **kwargs)
        except httpx.TimeoutException:
            raise CliError(
                f"the API at {self.target.url} did not answer within {self._timeout:.0f} s"
            ) from None
        except httpx.TransportError as exc:
            raise CliError(
                f"cannot reach the API at {self.target.url} ({_reason(exc)}); is it running? "
                f"Point --api or ${URL_ENV} at it"
            ) from None
        if resp.status_code >= 400:
            raise CliError(self._describe(resp))
        return resp

    def _describe(self, resp: httpx.Response) -> str:
        body = _body(resp)
        detail = _detail(body, resp)
        status = resp.status_code
        if status == 401 and self.target.token:
            return f"the API refused the request: {detail} (the token from --token/${TOKEN_ENV})"
        if status == 401:
            source = self.target.key_source
            where = "no key was sent" if source == "none" else f"the key from {source}"
            return (
                f"the API refused the request: {detail} ({where}); pass --key, set "
                f"${KEY_ENV}, or run from the repository after `make demo` (.cluster/api-key)"
            )
        if status == 409 and isinstance(body, dict) and body.get("active_task_id"):
            active = body["active_task_id"]
            return (
                f"{detail} (follow it: datapipelines tasks {active}; "
                f"cancel it: datapipelines cancel {active})"
            )
        if status == 503:
            return f"{detail} (the API cannot reach Kubernetes right now; try again shortly)"
        if status in (403, 404, 409, 504) or (status == 500 and isinstance(body, dict)):
            return detail
        return f"HTTP {status} from {resp.request.method} {resp.request.url.path}: {detail}"


def _seg(value: str) -> str:
    """One path segment (a name or id never changes the path)."""
    return quote(value, safe="")


def _reason(exc: httpx.TransportError) -> str:
    text = str(exc) or type(exc).__name__
    return text.removeprefix("[Errno 111] ")


def _body(resp: httpx.Response) -> Any:
    try:
        return resp.json()
    except ValueError:
        return None


def _detail(body: Any, resp: httpx.Response) -> str:
    if isinstance(body, dict):
        detail = body.get("detail")
        if isinstance(detail, str):
            return detail
        if isinstance(detail, list):  # FastAPI's validation errors
            return "; ".join(
                f"{'.'.join(str(p) for p in item.get('loc', []))}: {item.get('msg')}"
                for item in detail
                if isinstance(item, dict)
            )
    return (resp.text or resp.reason_phrase).strip()[:300]
