"""``bench --url``: the clients that talk to a server, each request bounded in time and in bytes.

**Time.** tritonclient's HTTP client (geventhttpclient) applies its ``network_timeout`` to each
socket read, not to a request: a server that sent its headers at once and then one byte of its
body every 2 s kept ``--request-timeout 5`` waiting for ever (adversarial pass C8). Each HTTP
request therefore runs under one ``gevent.Timeout``, from the first byte sent to the last byte
read: the client's sockets are gevent's, so the timer interrupts a send or a read wherever it
waits. A timer fires only while the client waits, and a server that floods header lines, chunked
trailers or ``100 Continue`` replies never lets it wait (fourth pass F1): so every read of a
request's socket also checks the deadline and counts the bytes (:class:`_Meter`). gRPC's
``client_timeout`` is already a deadline for the whole call (a relay that drips the answer's
HTTP/2 frames fails at the deadline: ``tests/bench/test_bench_served.py``).

**Size.** tritonclient reads a reply whole, whatever it claims: an answer claiming 8 GiB took the
client to 5.7 GB (C9). Every reply has a bound stated from what is expected: :func:`answer_bytes`
for an answer to inference, :data:`REPLY_BYTES` for everything else (metadata, statistics, a
config, readiness, an error). Over HTTP a ``Content-Length`` above the bound is refused before the
body is read, and a body without one is read only up to the bound (one shorter than its body ends
the read there: the parser stops at it). At the socket, a request reads at most the bound plus
:data:`HEAD_BYTES` for its status lines, headers, interim replies, chunk sizes and trailers, which
geventhttpclient would otherwise read for as long as they come. A compressed reply is refused, as bench never asks for one
and tritonclient would decompress it whole. Over gRPC the bound is the channel's
``grpc.max_receive_message_length``, which gRPC applies to the decompressed message.
"""

from __future__ import annotations

import functools
import re
import time
from typing import Any, Callable

from .._errors import InputError

__all__ = ["REPLY_BYTES", "ReplyTooLarge", "answer_bytes", "client_module", "open_client"]

REPLY_BYTES = 4 << 20  # metadata, statistics, a config: Triton's are a few KB
HEAD_BYTES = 1 << 20  # what an HTTP reply may add to its body: Triton's headers are a few hundred bytes
VALUE_BYTES = 32  # one number of an answer: 8 bytes in binary, at most 24 characters and ", " as JSON text
ANSWER_JSON_BYTES = 1 << 20  # the JSON around an answer's numbers (names, shape, parameters)
_GRPC_MAX = 2**31 - 1  # gRPC's channel options are C ints; tritonclient's own default for both directions
_HTTP_BLOCK = 1 << 16
_GRPC_TOO_LARGE = re.compile(r"message larger than max(?: \((\d+) vs\. \d+\))?")  # gRPC's words, size if read


class ReplyTooLarge(InputError):
    """A server's reply over the bytes bench reads of it."""


def answer_bytes(batch: int, classes: int | None) -> int:
    """The most bench reads of an answer to a batch of ``batch``: ``batch x classes`` numbers at
    :data:`VALUE_BYTES` each, plus :data:`ANSWER_JSON_BYTES`. A file whose graph leaves its width
    open is given export's widest head."""
    if classes is None:
        from ..export.options import MAX_CLASSES

        classes = MAX_CLASSES
    return batch * classes * VALUE_BYTES + ANSWER_JSON_BYTES


def too_large(where: str, limit: int, detail: str) -> ReplyTooLarge:
    return ReplyTooLarge(f"{where} answered more than the {limit} bytes bench reads of a reply ({detail})")


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


def open_client(protocol: str, address: str, *, timeout: float, reply_bytes: int = REPLY_BYTES) -> Any:
    """A tritonclient client of ``protocol`` for ``address`` (HOST:PORT) whose replies over
    ``reply_bytes`` raise :class:`ReplyTooLarge`. Over HTTP each request takes at most ``timeout``
    seconds (else ``TimeoutError``); over gRPC each call passes its own ``client_timeout``."""
    module = client_module(protocol)
    where = f"{protocol}://{address}"
    if protocol == "http":
        client = module.InferenceServerClient(address, connection_timeout=timeout, network_timeout=timeout)
        # tritonclient makes every request through this geventhttpclient object (get, post, close),
        # and the object reads every reply through a socket from its connection pool.
        stub, meter = client._client_stub, _Meter(where, reply_bytes)
        stub._connection_pool = _MeteredPool(stub._connection_pool, meter)
        client._client_stub = _BoundedHTTP(stub, meter, timeout)
        return client
    limit = min(reply_bytes, _GRPC_MAX)
    client = module.InferenceServerClient(address, channel_args=[  # gRPC's defaults otherwise, as tritonclient's
        ("grpc.max_send_message_length", _GRPC_MAX), ("grpc.max_receive_message_length", limit)])
    return _BoundedGRPC(client, where, limit, module.InferenceServerException)


class _BoundedHTTP:
    """geventhttpclient's ``HTTPClient`` as tritonclient calls it, each request under one deadline
    and its reply read whole within the bound before tritonclient sees it."""

    def __init__(self, stub: Any, meter: "_Meter", timeout: float) -> None:
        self._stub, self._meter, self.timeout = stub, meter, timeout
        self.where, self.limit = meter.where, meter.limit

    def get(self, request_uri: str, headers: Any = None) -> "_Reply":
        return self._request(f"GET {request_uri}", lambda: self._stub.get(request_uri, headers=headers))

    def post(self, request_uri: str, body: Any = None, headers: Any = None) -> "_Reply":
        return self._request(f"POST {request_uri}", lambda: self._stub.post(request_uri, body=body, headers=headers))

    def close(self) -> None:
        self._stub.close()

    def _request(self, request: str, send: Callable[[], Any]) -> "_Reply":
        import gevent

        # A TimeoutError as the socket's own timeout is: geventhttpclient closes the connection.
        late = TimeoutError(f"{self.where}: {request} took over {self.timeout:g} s")
        self._meter.start(request, time.monotonic() + self.timeout, late)
        with gevent.Timeout(self.timeout, late):
            response = send()
            return _Reply(response, self._body(response, request))

    def _body(self, response: Any, request: str) -> bytes:
        encoding = response.get("content-encoding")
        if encoding not in (None, "identity"):
            response.release()
            raise InputError(f"{self.where} answered {request} compressed ({encoding}), which bench does not ask for "
                             "and does not read (it would be decompressed whole)")
        length = response.content_length  # None when absent or given twice
        if length is not None:
            if length > self.limit:
                response.release()  # unread: the connection is closed, not kept
                raise too_large(self.where, self.limit, f"{request}: {length} bytes by its Content-Length")
            return response.read()
        body = bytearray()
        while chunk := response.read(_HTTP_BLOCK):
            body += chunk
            if len(body) > self.limit:
                response.release()
                raise too_large(self.where, self.limit, f"{request}: no Content-Length, read until the bound")
        return bytes(body)


class _Meter:
    """One request's deadline and the bytes left to it at the socket, set as the request starts."""

    def __init__(self, where: str, limit: int) -> None:
        self.where, self.limit, self.budget = where, limit, limit + HEAD_BYTES
        self.request, self.deadline, self.late, self.left = "", float("inf"), TimeoutError(), self.budget

    def start(self, request: str, deadline: float, late: TimeoutError) -> None:
        self.request, self.deadline, self.late, self.left = request, deadline, late, self.budget

    def count(self, received: int) -> None:
        """After a read of ``received`` bytes: past the deadline or the budget, the request ends."""
        self.left -= received
        if self.left < 0:
            raise too_large(self.where, self.limit, f"{self.request}: over {self.budget} bytes read with its "
                            "status lines, headers and trailers, counted at the socket")
        if time.monotonic() > self.deadline:
            raise self.late


class _MeteredSocket:
    """A pooled socket whose reads :class:`_Meter` counts; everything else is the socket's."""

    def __init__(self, sock: Any, meter: _Meter) -> None:
        self.raw, self._meter = sock, meter

    def recv(self, size: int) -> bytes:  # geventhttpclient's only read
        data = self.raw.recv(size)
        try:
            self._meter.count(len(data))
        except BaseException:
            self.raw.close()  # never reused: the rest of the reply is unread
            raise
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)


class _MeteredPool:
    """geventhttpclient's connection pool, lending each socket metered and taking it back bare."""

    def __init__(self, pool: Any, meter: _Meter) -> None:
        self._pool, self._meter = pool, meter

    def get_socket(self) -> _MeteredSocket:
        return _MeteredSocket(self._pool.get_socket(), self._meter)

    def return_socket(self, sock: Any) -> None:
        self._pool.return_socket(getattr(sock, "raw", sock))

    def release_socket(self, sock: Any) -> None:
        self._pool.release_socket(getattr(sock, "raw", sock))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pool, name)


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


class _BoundedGRPC:
    """A tritonclient gRPC client whose calls refused by the channel's receive bound raise
    :class:`ReplyTooLarge` naming the call and the size, like HTTP's."""

    def __init__(self, client: Any, where: str, limit: int, error: type[Exception]) -> None:
        self._client, self.where, self.limit, self._error = client, where, limit, error

    def close(self) -> None:
        self._client.close()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)

        @functools.wraps(method)
        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return method(*args, **kwargs)
            except self._error as exc:
                found = _GRPC_TOO_LARGE.search(str(exc))
                if found is None:
                    raise
                size = f"{found[1]} bytes by gRPC's count" if found[1] else "compressed, larger decompressed"
                raise too_large(self.where, self.limit, f"{name}: {size}") from None

        return call
