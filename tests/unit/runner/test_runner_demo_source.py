"""The demo source's pages, cursor, auth and failure injection (pure `render_page`, and HTTP)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from datapipelines.runner.demo_source import DemoState, first_id_since, record, render_page
from tests.support.http_source import serve_demo_source


def q(**kw: object) -> dict[str, list[str]]:
    return {k: [str(v)] for k, v in kw.items()}


def test_pages_cover_all_records_once() -> None:
    state = DemoState(records=250, page_size=100)
    ids = []
    for page in range(1, 5):
        status, body = render_page(state, q(page=page))
        assert status == 200
        ids += [item["id"] for item in body["items"]]
    assert ids == list(range(1, 251))
    assert body["total_pages"] == 3 and body["items"] == []


def test_records_have_ten_fields_and_increasing_cursor() -> None:
    assert len(record(1)) == 10
    assert record(1)["updated_at"] < record(2)["updated_at"]
    assert first_id_since(record(42)["updated_at"]) == 42
    assert first_id_since("2024-01-01T00:00:41.5Z") == 42
    assert first_id_since(None) == 1


def test_updated_since_is_inclusive() -> None:
    state = DemoState(records=100, page_size=10)
    status, body = render_page(state, q(page=1, updated_since=record(95)["updated_at"]))
    assert status == 200
    assert [i["id"] for i in body["items"]] == [95, 96, 97, 98, 99, 100]
    assert body["total"] == 6


def test_failure_injection_and_bad_queries() -> None:
    state = DemoState(records=1000, fail_from_page=3)
    assert render_page(state, q(page=2))[0] == 200
    assert render_page(state, q(page=3))[0] == 500
    assert render_page(state, q(page="x"))[0] == 400
    assert render_page(state, q(page=1, page_size=0))[0] == 400


def test_http_auth_404_and_pages() -> None:
    with serve_demo_source(DemoState(records=5, token="tok")) as src:
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(src.url + "items", timeout=5)
        assert err.value.code == 401
        request = urllib.request.Request(
            src.url + "items?page_size=2", headers={"Authorization": "Bearer tok"}
        )
        with urllib.request.urlopen(request, timeout=5) as resp:
            body = json.loads(resp.read())
        assert [i["id"] for i in body["items"]] == [1, 2]
        request = urllib.request.Request(src.url + "nope", headers={"Authorization": "Bearer tok"})
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(request, timeout=5)
        assert err.value.code == 404
        assert src.state.first_request_at is not None


def test_healthz_needs_no_token_and_is_not_counted() -> None:
    with serve_demo_source(DemoState(records=5, token="tok")) as src:
        with urllib.request.urlopen(src.url + "healthz", timeout=5) as resp:
            assert resp.status == 200
        assert src.state.requests == []
        assert src.state.first_request_at is None
