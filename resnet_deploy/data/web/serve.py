#!/usr/bin/env python3
"""Serve this folder on http://127.0.0.1:8080 with the headers that make the page cross-origin
isolated (COOP ``same-origin``, COEP ``require-corp``): without them browsers withhold
SharedArrayBuffer and onnxruntime-web runs on one thread. Python's standard library only.

    python3 serve.py [--port 8080] [--host 127.0.0.1]

(8080, not 8000: that is Triton's HTTP port, which ``resnet-deploy serve`` takes.)
"""

from __future__ import annotations

import argparse
import functools
import http.server
from pathlib import Path


class IsolatedHandler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map,
                      ".mjs": "text/javascript", ".js": "text/javascript", ".wasm": "application/wasm"}

    def end_headers(self) -> None:
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()


class QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        import sys

        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return  # the browser dropped a connection (a reload, a closed tab): nothing went wrong here
        super().handle_error(request, client_address)  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--host", default="127.0.0.1", help="127.0.0.1 (default) serves this machine only")
    args = parser.parse_args()
    handler = functools.partial(IsolatedHandler, directory=str(Path(__file__).resolve().parent))
    with QuietServer((args.host, args.port), handler) as server:
        print(f"serving {Path(__file__).resolve().parent} on http://{args.host}:{server.server_address[1]}/ "
              "(Ctrl-C stops)")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
