"""A stand-in for the Docker Engine API on a unix socket, for the Compose deploy target.

No Docker engine runs on the test machine. This answers the few endpoints the Docker SDK's
``APIClient`` (through Airflow's ``DockerHook``) calls to restart a container — ``/_ping``,
``/version``, ``GET /containers/<name>/json``, ``POST /containers/<name>/restart`` — over the
same transport a real engine uses, and records every request.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import socketserver
import threading
from collections.abc import Generator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

API_VERSION = "1.47"


@dataclass
class FakeEngine:
    url: str
    containers: dict[str, dict] = field(default_factory=dict)
    requests: list[tuple[str, str, dict]] = field(default_factory=list)
    # When False, a restarted container stays exited (a crash on start).
    restart_succeeds: bool = True


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


@contextlib.contextmanager
def fake_docker_engine(socket_path: Path, containers: list[str]) -> Generator[FakeEngine]:
    engine = FakeEngine(url=f"unix://{socket_path}")
    for name in containers:
        engine.containers[name] = {
            "Id": f"{name}-0123456789ab",
            "Name": f"/{name}",
            "State": {"Status": "running", "Running": True, "StartedAt": _now()},
        }

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # unix sockets have no client address
            pass

        def _answer(self, status: int, body: object = None) -> None:
            payload = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _route(self, method: str) -> None:
            parts = urlsplit(self.path)
            path = parts.path.removeprefix(f"/v{API_VERSION}")
            engine.requests.append((method, path, parse_qs(parts.query)))
            if method == "GET" and path == "/_ping":
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"OK")
                return
            if method == "GET" and path == "/version":
                return self._answer(200, {"ApiVersion": API_VERSION, "Version": "28.2.2"})
            segments = path.strip("/").split("/")
            if len(segments) == 3 and segments[0] == "containers":
                container = engine.containers.get(segments[1])
                if container is None:
                    return self._answer(404, {"message": f"No such container: {segments[1]}"})
                if method == "GET" and segments[2] == "json":
                    return self._answer(200, container)
                if method == "POST" and segments[2] == "restart":
                    ok = engine.restart_succeeds
                    container["State"] = {
                        "Status": "running" if ok else "exited",
                        "Running": ok,
                        "StartedAt": _now(),
                    }
                    return self._answer(204)
            self._answer(404, {"message": f"unexpected {method} {path}"})

        def do_GET(self) -> None:
            self._route("GET")

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            self._route("POST")

    server = _Server(str(socket_path), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield engine
    finally:
        server.shutdown()
        server.server_close()
        socket_path.unlink(missing_ok=True)
