"""``bench --url``: the clients that talk to a server, each request under one deadline.

tritonclient's HTTP client (geventhttpclient) applies its ``network_timeout`` to each socket read,
not to a request: a server that sent its headers at once and then one byte of its body every 2 s
kept ``--request-timeout 5`` waiting for ever (adversarial pass C8). Each HTTP request therefore
runs under one ``gevent.Timeout``, from the first byte sent to the last byte read: the client's
sockets are gevent's, so the timer interrupts a send or a read wherever it waits. gRPC's
``client_timeout`` is already a deadline for the whole call (a relay that drips the answer's
HTTP/2 frames fails at the deadline: ``tests/bench/test_bench_served.py``).
"""

from __future__ import annotations

from typing import Any, Callable

from .._errors import InputError

__all__ = ["client_module", "open_client"]


def client_module(protocol: str) -> Any:
    """``tritonclient.grpc`` or ``tritonclient.http``, or one line saying what to install."""
    try:
        if protocol == "grpc":
            import tritonclient.grpc as module
        else:
            import tritonclient.http as module
    except (ImportError, RuntimeError):  # tritonclient installed without this protocol raises RuntimeError
        raise InputError(f"measuring a served model needs tritonclient: pip install 'tritonclient[{protocol}]'") from None
    return module


def open_client(protocol: str, address: str, *, timeout: float) -> Any:
    """A tritonclient client of ``protocol`` for ``address`` (HOST:PORT). Over HTTP each request
    takes at most ``timeout`` seconds (else ``TimeoutError``); over gRPC each call passes its own
    ``client_timeout``."""
    module = client_module(protocol)
    if protocol == "http":
        client = module.InferenceServerClient(address, connection_timeout=timeout, network_timeout=timeout)
        # tritonclient makes every request through this geventhttpclient object (get, post, close).
        client._client_stub = _DeadlineHTTP(client._client_stub, f"{protocol}://{address}", timeout)
        return client
    return module.InferenceServerClient(address)


class _DeadlineHTTP:
    """geventhttpclient's ``HTTPClient`` as tritonclient calls it, each request under one deadline
    and its reply read whole before tritonclient sees it."""

    def __init__(self, stub: Any, where: str, timeout: float) -> None:
        self._stub, self.where, self.timeout = stub, where, timeout

    def get(self, request_uri: str, headers: Any = None) -> "_Reply":
        return self._request(f"GET {request_uri}", lambda: self._stub.get(request_uri, headers=headers))

    def post(self, request_uri: str, body: Any = None, headers: Any = None) -> "_Reply":
        return self._request(f"POST {request_uri}", lambda: self._stub.post(request_uri, body=body, headers=headers))

    def close(self) -> None:
        self._stub.close()

    def _request(self, request: str, send: Callable[[], Any]) -> "_Reply":
        import gevent

        # A TimeoutError as the socket's own timeout is: geventhttpclient closes the connection.
        with gevent.Timeout(self.timeout, TimeoutError(f"{self.where}: {request} took over {self.timeout:g} s")):
            response = send()
            return _Reply(response, response.read())


class _Reply:
    """A reply read whole: what tritonclient reads of one (``status_code``, ``get``, ``read``)."""

    def __init__(self, response: Any, body: bytes) -> None:
        self._response, self._body, self._at = response, body, 0
        self.status_code = response.status_code

    def get(self, key: str, default: Any = None) -> Any:
        return self._response.get(key, default)

    def read(self, length: int | None = None) -> bytes:
        end = len(self._body) if length is None or length < 0 else min(self._at + length, len(self._body))
        chunk, self._at = self._body[self._at : end], end
        return chunk
