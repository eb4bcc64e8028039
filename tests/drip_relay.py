"""A TCP relay that slows what a server sends to one byte at a time: a test fixture.

gRPC's answers cannot be dripped from a servicer (a unary answer is one message), but HTTP/2's
frames can be, on the wire: ``tests/fake_triton.py``'s ``drip`` mode puts this relay in front of
its gRPC server, so that a client's deadline is seen to hold against a server that keeps sending.
"""

from __future__ import annotations

import socket
import threading


def drip_relay(upstream: int, dripping: threading.Event, stopped: threading.Event, interval: float) -> socket.socket:
    """A listening socket on 127.0.0.1 relaying each connection to ``upstream``: what the server
    sends passes at once until ``dripping`` is set, then one byte every ``interval`` seconds, until
    ``stopped`` is set. Close the socket to stop accepting."""
    listener = socket.create_server(("127.0.0.1", 0))

    def pump(source: socket.socket, sink: socket.socket, drip: bool) -> None:
        try:
            while data := source.recv(65536):
                if not (drip and dripping.is_set()):
                    sink.sendall(data)
                    continue
                for i in range(len(data)):
                    if stopped.wait(interval):
                        return
                    sink.sendall(data[i : i + 1])
        except OSError:  # either side closed
            pass
        finally:
            source.close()
            sink.close()

    def accept() -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:  # the listener was closed
                return
            server = socket.create_connection(("127.0.0.1", upstream))
            threading.Thread(target=pump, args=(client, server, False), daemon=True).start()
            threading.Thread(target=pump, args=(server, client, True), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return listener
