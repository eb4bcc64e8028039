"""``bench --url`` over HTTP: tritonclient's geventhttpclient client, each request under one
deadline and one byte budget that every read of its socket checks (see :mod:`.served_client`)."""

from __future__ import annotations

import time
from typing import Any, Callable

from .._errors import InputError
from .served_bounds import HEAD_BYTES, ReplyTooLarge, too_large

__all__ = ["BoundedHTTP", "Meter", "MeteredPool"]

_HTTP_BLOCK = 1 << 16


class BoundedHTTP:
    """geventhttpclient's ``HTTPClient`` as tritonclient calls it, each request under one deadline
    and its reply read whole within the bound before tritonclient sees it."""

    def __init__(self, stub: Any, meter: "Meter", timeout: float) -> None:
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
            response = send()  # the status line and headers, within HEAD_BYTES
            self._meter.body_follows()
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


class Meter:
    """One request's deadline and the bytes left to it at the socket, set as the request starts:
    :data:`HEAD_BYTES` for its status lines and headers (interim replies included), then the reply
    bound more for its body, chunk sizes and trailers. Parsed headers take many times their bytes,
    so a header flood gets the small share alone. A client makes one request at a time (bench
    opens one per request thread), so one meter serves all of its sockets."""

    def __init__(self, where: str, limit: int) -> None:
        self.where, self.limit, self.budget = where, limit, limit + HEAD_BYTES
        self.start("", float("inf"), TimeoutError())

    def start(self, request: str, deadline: float, late: TimeoutError) -> None:
        self.request, self.deadline, self.late, self.left, self.in_body = request, deadline, late, HEAD_BYTES, False

    def body_follows(self) -> None:
        """The headers are read: the body may take the reply bound."""
        self.left, self.in_body = self.left + self.limit, True

    def count(self, received: int) -> None:
        """After a read of ``received`` bytes: past the deadline or the budget, the request ends."""
        self.left -= received
        if self.left < 0 and self.in_body:
            raise too_large(self.where, self.limit, f"{self.request}: over {self.budget} bytes with its status lines, "
                            "headers, chunk sizes and trailers, counted at the socket")
        if self.left < 0:
            raise ReplyTooLarge(f"{self.where} answered {self.request} with over {HEAD_BYTES} bytes of status lines "
                                "and headers, the most bench reads before a body")
        if time.monotonic() > self.deadline:
            raise self.late


class MeteredSocket:
    """A pooled socket whose reads :class:`Meter` counts; everything else is the socket's."""

    def __init__(self, sock: Any, meter: Meter) -> None:
        self.raw, self._meter = sock, meter

    def recv(self, size: int) -> bytes:  # geventhttpclient's only read
        data = self.raw.recv(size)
        try:
            self._meter.count(len(data))
        except BaseException:
            self.raw.close()  # never reused: the rest of the reply is unread
            raise
        return data

    def recv_into(self, *args: Any) -> int:
        raise NotImplementedError("a metered socket reads through recv() alone")  # a read it would not count

    def makefile(self, *args: Any) -> Any:
        raise NotImplementedError("a metered socket reads through recv() alone")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)


class MeteredPool:
    """geventhttpclient's connection pool, lending each socket metered and taking it back bare."""

    def __init__(self, pool: Any, meter: Meter) -> None:
        self._pool, self._meter = pool, meter

    def get_socket(self) -> MeteredSocket:
        return MeteredSocket(self._pool.get_socket(), self._meter)

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
