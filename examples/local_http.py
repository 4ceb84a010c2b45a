"""A small HTTP file server on 127.0.0.1 for the thread-pool example.

It serves a fixed set of files (URL path -> file) from a background thread
and waits ``latency`` seconds before each answer, as a remote server would,
so that fetching is I/O-bound. It listens on loopback only.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote


class FileServer:
    """Serve ``files`` on ``http://127.0.0.1:<port>/<index>/<file name>``.

    ``start()`` binds a free port and returns the URLs in the order of
    ``files``; ``stop()`` shuts the server down and joins its thread.
    """

    def __init__(self, files: list[Path], latency: float = 0.02) -> None:
        self.files = [Path(file).resolve() for file in files]
        self.latency = latency
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> list[str]:
        routes = {
            f"/{number}/{quote(file.name)}": file
            for number, file in enumerate(self.files)
        }
        latency = self.latency

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                time.sleep(latency)
                file = routes.get(self.path)
                if file is None:
                    self.send_error(404, "no such file")
                    return
                body = file.read_bytes()
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return None  # keep the pipeline's output clean

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="local-http", daemon=True
        )
        self._thread.start()
        port = self._server.server_address[1]
        return [f"http://127.0.0.1:{port}{route}" for route in routes]

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
