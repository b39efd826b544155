"""A local webhook receiver for the tests of notifications and alerts: every JSON body POSTed to
it, in order (with the request's path under ``"path"`` when asked)."""

from __future__ import annotations

import http.server
import json
import threading


def json_receiver(with_path: bool = False) -> tuple[http.server.ThreadingHTTPServer, list[dict]]:
    """A started server on a free loopback port and the list it appends to; ``shutdown()`` it."""
    received: list[dict] = []

    class Receiver(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append({"path": self.path, **body} if with_path else body)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server, received
