"""A bundle served on 127.0.0.1 from a thread, cross-origin isolated (COOP/COEP, which threads
need), taking the page's result at ``POST /report``: the CI test and the benchmark read it there
(``--virtual-time-budget`` would freeze ``performance.now()``)."""

from __future__ import annotations

import functools
import http.server
import json
import queue
import threading
from pathlib import Path
from typing import Any

from resnet_deploy._errors import RuntimeBackendError

__all__ = ["BundleServer", "MAX_REPORT_BYTES"]

MAX_REPORT_BYTES = 64 << 20


class _Handler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map,
                      ".mjs": "text/javascript", ".js": "text/javascript", ".wasm": "application/wasm"}
    server: "_Server"

    def end_headers(self) -> None:
        # Cross-origin isolation: browsers give SharedArrayBuffer, and so threads, only to such pages.
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if self.path != "/report" or not 0 < length <= MAX_REPORT_BYTES:
            self.send_error(400)
            return
        body = self.rfile.read(length)
        self.send_response(204)
        self.end_headers()
        try:
            self.server.reports.put(json.loads(body))
        except ValueError:
            self.server.reports.put({"ok": False, "error": "the page posted a report that is not JSON"})

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        self.server.requests.append((self.command, self.path, int(code) if str(code).isdigit() else 0))

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    reports: "queue.Queue[dict[str, Any]]"
    requests: list[tuple[str, str, int]]


class BundleServer:
    """A bundle served on ``http://127.0.0.1:PORT/`` from a thread, cross-origin isolated, taking
    the page's report at ``POST /report``. A context manager; ``requests`` logs what was asked."""

    def __init__(self, folder: str | Path, *, host: str = "127.0.0.1", port: int = 0) -> None:
        handler = functools.partial(_Handler, directory=str(folder))
        self._server = _Server((host, port), handler)
        self._server.reports = queue.Queue()
        self._server.requests = []
        self._thread = threading.Thread(target=self._server.serve_forever, name="bundle-server", daemon=True)
        self._thread.start()
        self.url = f"http://{host}:{self._server.server_address[1]}/"

    @property
    def requests(self) -> list[tuple[str, str, int]]:
        return list(self._server.requests)

    def report(self, timeout: float) -> dict[str, Any]:
        """The next report the page posts, or a RuntimeBackendError after ``timeout`` seconds."""
        try:
            return self._server.reports.get(timeout=timeout)
        except queue.Empty:
            raise RuntimeBackendError(f"the page posted no result within {timeout:.0f} s") from None

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> "BundleServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
