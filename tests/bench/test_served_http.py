"""``bench --url``'s HTTP client against a server that floods what comes before or after a
reply's body (issue 26, fourth adversarial pass F1): header lines, one endless header value,
chunked trailers, ``100 Continue`` replies. geventhttpclient reads each for as long as it comes,
and a flood never lets the request's timer fire; the client must still stop at its deadline and
at its byte bound; and a server that answers right must still be answered, request after
request. Needs ``tritonclient[http]`` (``.ci/run`` runs this file in
the serve environment, with ``RESNET_DEPLOY_REQUIRE_TRITON=1``: there a skip is a failure).
"""

from __future__ import annotations

import contextlib
import importlib.util
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from resnet_deploy.bench.served_bounds import HEAD_BYTES, ReplyTooLarge
from resnet_deploy.bench.served_client import open_client

from .._require import skip_unless_present
from ..fake_triton import NAME, FakeTriton

skip_unless_present(None if importlib.util.find_spec("gevent") else "tritonclient[http] is not installed here",
                    "RESNET_DEPLOY_REQUIRE_TRITON", module_level=True)

FLOOD_S = 60.0  # the server sends for this long at most; before the fix the client read all of it

# What the server sends first, then the block it repeats as fast as the socket takes it.
FLOODS = {
    "header lines": (b"HTTP/1.1 200 OK\r\n", b"X-a: b\r\n" * 8192),
    "one endless header": (b"HTTP/1.1 200 OK\r\nX-Big: ", b"a" * 65536),
    "chunked trailers": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n",
                         b"T-a: b\r\n" * 8192),
    "100 Continue replies": (b"", b"HTTP/1.1 100 Continue\r\n\r\n" * 2048),
}


@pytest.fixture(params=list(FLOODS))
def flood(request: pytest.FixtureRequest) -> Iterator[str]:
    """``host:port`` of a server that answers any request with the flood, until the client leaves."""
    head, block = FLOODS[request.param]
    listener = socket.create_server(("127.0.0.1", 0))
    stopped = threading.Event()

    def serve() -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            conn.recv(65536)
            end = time.monotonic() + FLOOD_S
            try:
                conn.sendall(head)
                while time.monotonic() < end and not stopped.is_set():
                    conn.sendall(block)
            except OSError:  # the client closed the connection: what it must do
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"127.0.0.1:{listener.getsockname()[1]}"
    stopped.set()
    with contextlib.suppress(OSError):
        listener.shutdown(socket.SHUT_RDWR)  # wakes an accept() still waiting: close() alone does not
    listener.close()
    thread.join(10)


def _ask(address: str, *, timeout: float, reply_bytes: int) -> tuple[BaseException, float]:
    client = open_client("http", address, timeout=timeout, reply_bytes=reply_bytes)
    start = time.monotonic()
    try:
        client.is_server_ready()
    except BaseException as exc:  # noqa: BLE001 - what it raised is what is checked
        return exc, time.monotonic() - start
    finally:
        client.close()
    pytest.fail(f"a flood was taken as a reply after {time.monotonic() - start:.1f} s")


def test_a_flood_ends_by_the_request_timeout(flood: str, request: pytest.FixtureRequest) -> None:
    """A reply bound too large to reach: what comes before the body still has its own 1 MiB, and
    trailers, which come after it, end at the deadline, read at the socket."""
    exc, took = _ask(flood, timeout=1.0, reply_bytes=1 << 30)
    print(f"{flood}: {type(exc).__name__} after {took:.2f} s: {exc}")
    if "trailers" in request.node.callspec.id:
        assert isinstance(exc, TimeoutError) and "took over 1 s" in str(exc), exc
    else:
        assert isinstance(exc, (TimeoutError, ReplyTooLarge)), exc
        assert isinstance(exc, TimeoutError) or f"over {HEAD_BYTES} bytes of status lines and headers" in str(exc)
    assert took < FLOOD_S / 3  # the deadline, not the server's end (it was FLOOD_S and more before)


def test_a_flood_ends_at_the_reply_bound(flood: str, request: pytest.FixtureRequest) -> None:
    """A deadline too far to reach first: the byte count ends it."""
    exc, took = _ask(flood, timeout=FLOOD_S * 2, reply_bytes=4096)
    print(f"{flood}: {type(exc).__name__} after {took:.2f} s: {exc}")
    assert isinstance(exc, ReplyTooLarge), exc
    before_body = f"with over {HEAD_BYTES} bytes of status lines and headers"
    with_body = f"over {4096 + HEAD_BYTES} bytes with its status lines, headers, chunk sizes and trailers"
    assert (with_body if "trailers" in request.node.callspec.id else before_body) in str(exc)
    assert "GET /v2/health/ready" in str(exc) and took < FLOOD_S / 3


def test_right_replies_are_read_request_after_request() -> None:
    """Each request gets its own budget: 3,000 metadata replies (well over one budget in all) are
    read, and what the pool keeps is the socket itself (the meter is lent, not kept)."""
    with FakeTriton("no-stats") as fake:  # right answers, and metadata
        client = open_client("http", fake.http, timeout=5.0, reply_bytes=1024)
        try:
            for _ in range(3000):
                assert client.get_model_metadata(NAME)["name"] == NAME
            pool = client._client_stub._stub._connection_pool._pool
            kept = list(pool._socket_queue.queue)
        finally:
            client.close()
    assert len(kept) <= 1 and all(type(s).__name__ == "socket" for s in kept), kept  # the fake closes after each
