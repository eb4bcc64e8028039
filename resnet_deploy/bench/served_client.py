"""``bench --url``: the clients that talk to a server, each request bounded in time and in bytes.

**Time.** tritonclient's HTTP client (geventhttpclient) applies its ``network_timeout`` to each
socket read, not to a request: a server that sent its headers at once and then one byte of its
body every 2 s kept ``--request-timeout 5`` waiting for ever (adversarial pass C8). Each HTTP
request therefore runs under one ``gevent.Timeout``, from the first byte sent to the last byte
read: the client's sockets are gevent's, so the timer interrupts a send or a read wherever it
waits. A timer fires only while the client waits, and a server that floods header lines, chunked
trailers or ``100 Continue`` replies never lets it wait (fourth pass F1): so every read of a
request's socket also checks the deadline and counts the bytes (:class:`.served_http.Meter`). gRPC's
``client_timeout`` is already a deadline for the whole call (a relay that drips the answer's
HTTP/2 frames fails at the deadline: ``tests/bench/test_bench_served.py``).

**Size.** tritonclient reads a reply whole, whatever it claims: an answer claiming 8 GiB took the
client to 5.7 GB (C9). Every reply has a bound stated from what is expected: :func:`answer_bytes`
for an answer to inference, :data:`REPLY_BYTES` for everything else (metadata, statistics, a
config, readiness, an error). Over HTTP a ``Content-Length`` above the bound is refused before the
body is read, and a body without one is read only up to the bound (one shorter than its body ends
the read there: the parser stops at it). At the socket, a request reads at most :data:`HEAD_BYTES`
before its body (status lines, headers, interim replies) and the bound plus that in all (chunk
sizes and trailers too), which geventhttpclient would otherwise read for as long as they come.
A compressed reply is refused, as bench never asks for one and tritonclient would decompress it
whole. Over gRPC the bound is the channel's
``grpc.max_receive_message_length``, which gRPC applies to the decompressed message.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from .._errors import InputError
from .served_bounds import REPLY_BYTES, too_large
from .served_http import BoundedHTTP, Meter, MeteredPool

__all__ = ["client_module", "open_client"]

_GRPC_MAX = 2**31 - 1  # gRPC's channel options are C ints; tritonclient's own default for both directions
_GRPC_TOO_LARGE = re.compile(r"message larger than max(?: \((\d+) vs\. \d+\))?")  # gRPC's words, size if read


def client_module(protocol: str) -> Any:
    """``tritonclient.grpc`` or ``tritonclient.http``, or one line saying what to install."""
    try:
        if protocol == "grpc":
            import tritonclient.grpc as module
        else:
            import tritonclient.http as module
    except (ImportError, RuntimeError):  # tritonclient installed without this protocol raises RuntimeError
        raise InputError("measuring a served model needs tritonclient: "
                         f"pip install 'tritonclient[{protocol}]'") from None
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
        stub, meter = client._client_stub, Meter(where, reply_bytes)
        stub._connection_pool = MeteredPool(stub._connection_pool, meter)
        client._client_stub = BoundedHTTP(stub, meter, timeout)
        return client
    limit = min(reply_bytes, _GRPC_MAX)
    client = module.InferenceServerClient(address, channel_args=[  # gRPC's defaults otherwise, as tritonclient's
        ("grpc.max_send_message_length", _GRPC_MAX), ("grpc.max_receive_message_length", limit),
        # gRPC reads the socket in growing chunks; a server flooding cheap HTTP/2 frames (PRIORITY,
        # unknown types) held 1.2 GB of them in the client until the deadline (pass 5): 57 MB with these.
        ("grpc.experimental.tcp_read_chunk_size", 8192), ("grpc.experimental.tcp_max_read_chunk_size", 65536)])
    return _BoundedGRPC(client, where, limit, module.InferenceServerException)


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
