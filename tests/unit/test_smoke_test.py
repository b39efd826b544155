"""The post-promotion smoke test against a model server with several workers."""

from __future__ import annotations

import json
import threading
from collections.abc import Generator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mlops_pipeline.config import Settings
from mlops_pipeline.deployment import smoke as deployment
from mlops_pipeline.failures import PermanentFailure


class _Workers:
    """Two workers behind one port, as uvicorn runs them: /model and /predict come from the
    one that swapped, /metrics shows both (livemax)."""

    def __init__(self) -> None:
        self.second_worker_serves = "1"
        self.requests: list[dict] = []

    def exposition(self) -> str:
        lines = ["# TYPE mlops_model_info gauge"]
        for version in ("1", "2"):
            served = version == "2" or self.second_worker_serves == version
            lines.append(
                f'mlops_model_info{{alias="champion",model="churn-classifier",version="{version}"}}'
                f" {1.0 if served else 0.0}"
            )
        return "\n".join(lines) + "\n"


@pytest.fixture
def server() -> Generator[tuple[str, _Workers]]:
    workers = _Workers()
    requests = workers.requests

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, body: str, content_type: str = "application/json") -> None:
            data = body.encode()
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/metrics":
                self._answer(workers.exposition(), "text/plain")
            else:
                self._answer(json.dumps({"version": "2"}))

        def do_POST(self) -> None:
            requests.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self._answer(json.dumps({"model_version": "2", "predictions": []}))

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", workers
    httpd.shutdown()


def test_the_smoke_test_waits_for_every_worker(server, tmp_path):
    base, workers = server
    settings = Settings(usecase="churn", home=tmp_path, serving_url=base, smoke_timeout_seconds=2.5)
    with pytest.raises(deployment.SmokeTestFailed, match=r"workers still serve version\(s\) 1"):
        deployment.smoke_test(settings, "2")

    workers.second_worker_serves = "2"
    assert deployment.smoke_test(settings, "2") == {"url": base, "version": "2", "status": 200}
    # Feast's request shape, keyed by the use case's entity key.
    key = settings.spec.entity.key
    assert workers.requests[-1] == {"entities": {key: [1]}}
    assert issubclass(deployment.SmokeTestFailed, PermanentFailure)
