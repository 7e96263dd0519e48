"""The mock framework: routes, auth, injected faults (429 with Retry-After, 5xx, delays), the
HTTP controls, and every registered vendor importable."""

from __future__ import annotations

import httpx
import pytest

from datapipelines.mocks import VENDORS, MockApi, Request, Response, mock_class, route, serve


class Echo(MockApi):
    vendor = "echo"

    def authorize(self, request: Request) -> Response | None:
        return None if request.bearer == "t" else self.error(401, "who are you")

    @route("GET", "/things/{thing_id}")
    def thing(self, request: Request) -> Response:
        return Response(200, {"id": request.params["thing_id"], "q": request.arg("q")})


def test_routes_auth_and_404() -> None:
    with serve(Echo()) as api, httpx.Client(base_url=api.url) as http:
        assert http.get("/things/7").status_code == 401
        ok = http.get("/things/7", params={"q": "x"}, headers={"Authorization": "Bearer t"})
        assert ok.json() == {"id": "7", "q": "x"}
        assert http.get("/nope", headers={"Authorization": "Bearer t"}).status_code == 404
        assert api.stats.count("/things") == 2


def test_injected_faults_come_first_and_run_out() -> None:
    with serve(Echo()) as api, httpx.Client(base_url=api.url) as http:
        api.inject(429, times=2, retry_after=3, path_prefix="/things")
        headers = {"Authorization": "Bearer t"}
        first = http.get("/things/1", headers=headers)
        assert first.status_code == 429 and first.headers["Retry-After"] == "3"
        assert http.get("/things/1", headers=headers).status_code == 429
        assert http.get("/things/1", headers=headers).status_code == 200
        api.inject(503)
        assert http.get("/things/1", headers=headers).status_code == 503
        assert api.stats.statuses == [429, 429, 200, 503]


def test_http_controls() -> None:
    with serve(Echo()) as api, httpx.Client(base_url=api.url) as http:
        assert http.post("/__mock__/inject", json={"status": 500}).status_code == 204
        assert http.get("/things/1").status_code == 500
        stats = http.get("/__mock__/stats").json()
        assert stats["vendor"] == "echo" and stats["statuses"] == [500]
        assert http.post("/__mock__/reset").status_code == 204
        assert http.get("/__mock__/stats").json()["requests"] == []


@pytest.mark.parametrize("vendor", sorted(VENDORS))
def test_every_vendor_mock_is_registered(vendor: str) -> None:
    cls = mock_class(vendor)
    assert cls.vendor == vendor
    counts = cls().expected_counts()  # type: ignore[attr-defined]
    assert counts and all(n >= 0 for n in counts.values())
