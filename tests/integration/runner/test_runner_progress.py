"""Live progress and the final result reach the run's status through a (fake) apiserver."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.integration.runner.runnerkit import duckdb_destination, rest_resource, rest_spec


class FakeApiserver:
    """Records merge-patches of pipelineruns/<name>/status; optionally fails them."""

    def __init__(self, fail: bool = False) -> None:
        self.patches: list[tuple[str, str, dict]] = []
        self.fail = fail
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_PATCH(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.patches.append((self.path, self.headers.get("Authorization", ""), body))
                assert self.headers["Content-Type"] == "application/merge-patch+json"
                status = 500 if outer.fail else 200
                payload = b"{}"
                self.send_response(status)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def service_account(tmp_path: Path) -> Path:
    sa = tmp_path / "sa"
    sa.mkdir()
    (sa / "token").write_text("sa-token-123\n")
    return sa


def test_progress_and_result_are_patched_into_the_run_status(http_source, runner, tmp_path):
    api = FakeApiserver()
    try:
        http_source.state.delay_ms = 250  # 10 pages: ~2.5 s of extraction
        spec = rest_spec(http_source.url, duckdb_destination(tmp_path / "p.duckdb"))
        outcome = runner.run(
            spec,
            name="live",
            DATAPIPELINES_RUN_NAME="live-x7k2p",
            DATAPIPELINES_KUBE_API=api.url,
            DATAPIPELINES_SERVICEACCOUNT_DIR=str(service_account(tmp_path)),
        )
    finally:
        api.close()
    assert outcome.exit_code == 0, outcome.error
    assert api.patches, "no status patch reached the apiserver"
    paths = {p for p, _, _ in api.patches}
    assert paths == {
        "/apis/datapipelines.io/v1alpha1/namespaces/test/pipelineruns/live-x7k2p/status"
    }
    assert {auth for _, auth, _ in api.patches} == {"Bearer sa-token-123"}

    live = [body["status"]["progress"] for _, _, body in api.patches[:-1]]
    assert live, "no progress while running"
    assert any(p["stage"] == "extract" and 0 < p["recordsExtracted"] < 1000 for p in live)
    assert all(set(p) == {"stage", "recordsExtracted", "tables", "updatedAt"} for p in live)

    final = api.patches[-1][2]["status"]
    assert final["result"]["success"] is True
    assert final["result"]["rowsInserted"] == 1000
    assert final["result"] == {**outcome.result, "durationMs": final["result"]["durationMs"]}
    assert final["progress"]["recordsExtracted"] == 1000


def test_failing_apiserver_never_fails_the_sync(http_source, runner, tmp_path):
    api = FakeApiserver(fail=True)
    try:
        spec = rest_spec(
            http_source.url,
            duckdb_destination(tmp_path / "p.duckdb"),
            resources=[rest_resource(page_size=50)],
        )
        http_source.state.delay_ms = 120
        outcome = runner.run(
            spec,
            name="live",
            DATAPIPELINES_RUN_NAME="live-abc",
            DATAPIPELINES_KUBE_API=api.url,
            DATAPIPELINES_SERVICEACCOUNT_DIR=str(service_account(tmp_path)),
        )
    finally:
        api.close()
    assert outcome.exit_code == 0, outcome.error
    assert outcome.result["rowsInserted"] == 1000
    assert len(api.patches) >= 2  # progress was tried, and the result (with retries)


def test_unreachable_apiserver_never_fails_the_sync(http_source, runner, tmp_path):
    from tests.support.processes import free_port

    spec = rest_spec(http_source.url, duckdb_destination(tmp_path / "p.duckdb"))
    outcome = runner.run(
        spec,
        name="live",
        DATAPIPELINES_RUN_NAME="live-abc",
        DATAPIPELINES_KUBE_API=f"https://127.0.0.1:{free_port()}",
        DATAPIPELINES_SERVICEACCOUNT_DIR=str(service_account(tmp_path)),
    )
    assert outcome.exit_code == 0, outcome.error
    assert outcome.result["rowsInserted"] == 1000
