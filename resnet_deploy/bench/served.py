"""A model served by Triton, measured as one more engine: the client side of a load test.

``bench MODEL.onnx --url grpc://HOST:PORT --model NAME`` adds one engine per URL beside the
in-process ones. Its worker is a Triton client: each request thread holds its own connection and
sends the same fixed input the other engines run, so the latencies are client-side (request,
network, queue, model, response) and the output is compared with the baseline like any other.
The server's own statistics for the model, read before and after each timed round, give the
mean queue and compute time per request that those rounds caused.

Every call to the server has one deadline (``--request-timeout``, 30 s by default, for HTTP and
gRPC alike, from the request's first byte to its reply's last) and reads at most a bound stated
from what it expects (:mod:`.served_client`): a server that stops answering, or answers too slowly,
fails the engine at the first request that outlives it, and the engine's later groups are not
tried (:class:`~.schema.EngineGone`); a reply over its bound is refused unread. Every answer is
checked (:mod:`.served_answers`): the first must be ``[N, classes]`` of finite numbers, as the
model file's is, and every timed one the first again; anything else fails the engine, never a
clean row.
"""

from __future__ import annotations

import re
import threading
from http.client import HTTPException
from typing import Any, Callable

import numpy as np

from .._errors import InputError, first_line
from .schema import DEFAULT_REQUEST_TIMEOUT_S, Engine, EngineGone, Record, WorkerSpec
from .served_answers import SameAnswer, check_first
from .served_bounds import REPLY_BYTES, answer_bytes
from .served_client import client_module, open_client
from .served_replies import read_metadata, read_statistics
from .served_stats import ServerTimes

__all__ = ["TritonClientBackend", "served_engines", "parse_url", "check_served", "served_failures", "SERVED_PROVIDER"]

_URL = re.compile(r"^(?:(?P<scheme>http|grpc)://)?(?P<host>[A-Za-z0-9.\-]+|\[[0-9a-fA-F:]+\]):(?P<port>\d{1,5})/?$")
SERVED_PROVIDER = "server"  # the provider of every served engine's records
_DTYPES = {"FP32": np.float32, "FP16": np.float16, "UINT8": np.uint8, "FP64": np.float64}


def parse_url(url: str) -> tuple[str, str]:
    """``(protocol, host:port)`` of ``http://HOST:PORT``, ``grpc://HOST:PORT`` or ``HOST:PORT`` (HTTP)."""
    match = _URL.match(url.strip())
    if not match or not 0 < int(match["port"]) < 65536:
        raise InputError(f"--url {url!r} is not HOST:PORT, http://HOST:PORT or grpc://HOST:PORT")
    return match["scheme"] or "http", f"{match['host'].lower()}:{int(match['port'])}"  # one spelling per server


def served_engines(urls: list[str], model: str, *, classes: int | None = None,
                   timeout: float | None = None) -> list[Engine]:
    """One engine per URL, named after its protocol (``triton-grpc``, ``triton-http``); ``classes``
    is the width the model file's logits have, ``timeout`` the seconds one request may take."""
    engines: list[Engine] = []
    for url in urls:
        protocol, address = parse_url(url)
        name = f"triton-{protocol}"
        if any(e.name == name for e in engines):
            name = f"{name}-{address}"
        options = {"url": address, "protocol": protocol, "model": model,
                   "timeout": timeout or DEFAULT_REQUEST_TIMEOUT_S, "classes": classes}
        engines.append(Engine(name, "triton", SERVED_PROVIDER, "served", None, options,
                              f"{model} served by Triton at {address} ({protocol}), client-side latency"))
    return engines


def served_failures(records: list[Record]) -> list[Record]:
    """The records of served engines that failed: a load test whose server timed out, refused or
    answered what cannot be compared failed, whatever the in-process engines did."""
    return [r for r in records if r.provider == SERVED_PROVIDER and r.error]


def check_served(url: str, model: str) -> None:
    """Before any work: the server answers and has ``model`` ready; else one line saying which."""
    protocol, address = parse_url(url)
    client_module(protocol)  # tritonclient without this protocol: one line saying what to install
    try:
        client = open_client(protocol, address, timeout=5.0)
    except Exception as exc:  # noqa: BLE001 - the client's own words, in one line
        raise InputError(f"cannot reach Triton at {protocol}://{address}: {_words(exc)}") from None
    try:
        try:
            ready = (client.is_model_ready(model, client_timeout=5.0) if protocol == "grpc"
                     else client.is_model_ready(model))
        except Exception as exc:  # noqa: BLE001
            raise InputError(f"cannot reach Triton at {protocol}://{address}: {_words(exc)}") from None
        if not ready:
            raise InputError(f"Triton at {protocol}://{address} has no ready model named {model!r} "
                             "(give its name with --model)")
        # What a load test reads, checked before any work: a port that is not KServe v2's may still
        # answer readiness (Triton's metrics port says 200 to any path), a server may leave out keys.
        where = f"{protocol}://{address}"
        for what, read in (("metadata", read_metadata), ("statistics", read_statistics)):
            try:
                read(client, protocol, model, where, client_timeout=5.0)
            except InputError:
                raise
            except Exception as exc:  # noqa: BLE001 - a timeout or a refusal, in the client's words
                raise InputError(f"{where} did not answer the {what} of model {model!r}: {_words(exc)}") from None
    finally:
        client.close()


def _words(exc: BaseException) -> str:
    message = exc.message() if hasattr(exc, "message") and callable(exc.message) else str(exc)
    return (message or type(exc).__name__).strip().splitlines()[0][:200]


class TritonClientBackend:
    """Requests to a Triton server; options ``url`` (HOST:PORT), ``protocol``, ``model``,
    ``timeout`` (seconds per request) and ``classes`` (the width of the answer, when known)."""

    OPTIONS = frozenset({"url", "protocol", "model", "timeout", "classes"})

    def __init__(self, spec: WorkerSpec) -> None:
        options = spec.engine.options
        self.url, self.protocol, self.model = options["url"], options["protocol"], options["model"]
        self.where = f"{self.protocol}://{self.url}"
        self.timeout = float(options.get("timeout") or DEFAULT_REQUEST_TIMEOUT_S)
        self.classes: int | None = options.get("classes")
        self.module = client_module(self.protocol)
        client = self._client()
        try:
            if not self._ask(client.is_model_ready, self.model):
                raise InputError(f"{self.where} serves no ready model named {self.model!r}")
            meta = self._ask(read_metadata, client, self.protocol, self.model, self.where)
        except self.module.InferenceServerException as exc:
            raise InputError(f"{self.where}: {exc.message() or exc}") from None
        finally:
            client.close()
        self.input, self.datatype, self.output = meta.input, meta.datatype, meta.output
        self._round_start: ServerTimes | None = None
        self.timed_total = ServerTimes()
        self._first: tuple[np.ndarray, np.ndarray] | None = None  # the first input and the answer to it
        self.check_answer: SameAnswer | None = None  # the worker runs it on every timed answer

    def _client(self, batch: int | None = None) -> Any:
        """A client that reads at most an answer to ``batch`` (else a metadata or statistics reply)."""
        limit = answer_bytes(batch, self.classes) if batch is not None else REPLY_BYTES
        return open_client(self.protocol, self.url, timeout=self.timeout, reply_bytes=limit)

    def _ask(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``method(*args)`` of a client under the request deadline; a call that outlives it
        raises :class:`EngineGone` (gRPC's deadline is the call's, HTTP's set on the client)."""
        if self.protocol == "grpc":
            kwargs["client_timeout"] = self.timeout
        try:
            return method(*args, **kwargs)
        except self.module.InferenceServerException as exc:
            if str(exc.status()) == "StatusCode.DEADLINE_EXCEEDED":
                raise self._gone() from None
            raise
        except TimeoutError:  # the HTTP client's deadline
            raise self._gone() from None

    def _gone(self) -> EngineGone:
        return EngineGone(f"{self.where} did not answer within {self.timeout:g} s (--request-timeout); "
                          "its later batch sizes and concurrencies are not measured")

    def _request(self, client: Any, x: np.ndarray) -> Callable[[], np.ndarray]:
        inp = self.module.InferInput(self.input, list(x.shape), self.datatype)
        inp.set_data_from_numpy(np.ascontiguousarray(x, dtype=_DTYPES.get(self.datatype, x.dtype)))
        outputs = [self.module.InferRequestedOutput(self.output)]

        def send() -> np.ndarray:
            try:
                return self._ask(client.infer, self.model, [inp], outputs=outputs).as_numpy(self.output)
            except self.module.InferenceServerException as exc:
                raise RuntimeError(f"{self.where} refused the request: {exc.message() or exc}") from None
            except (ValueError, TypeError, KeyError, IndexError, HTTPException) as exc:  # a malformed reply
                raise RuntimeError(f"{self.where} answered a reply tritonclient cannot read: "
                                   f"{type(exc).__name__}: {first_line(exc)}") from None
            except ConnectionError as exc:  # reset or closed in the middle of a reply
                raise RuntimeError(f"{self.where} broke the connection: "
                                   f"{type(exc).__name__}: {first_line(exc)}") from None

        return send

    def infer(self, x: np.ndarray) -> np.ndarray:
        """One answer, checked: ``[N, classes]`` of finite numbers, or an error that says what came.
        The first is kept: every timed answer to the same input must be it again."""
        client = self._client(x.shape[0])
        try:
            answer = self._request(client, x)()
        finally:
            client.close()
        answer = check_first(answer, batch=x.shape[0], classes=self.classes, where=self.where, output=self.output)
        if self._first is None:
            self._first = (x, answer)
        return np.asarray(answer, dtype=np.float32)

    def timed(self, x: np.ndarray) -> Callable[[], np.ndarray]:
        """One connection per request thread, made in that thread (the HTTP client's gevent hub
        belongs to the thread that made it) and kept for the run. The call returns the answer,
        which :attr:`check_answer` compares with the first answer to ``x``, outside the timing."""
        if self._first is None or self._first[0] is not x:
            raise ValueError("a served engine times the input it answered first: infer(x), then timed(x)")
        self.check_answer = self.check_answer or SameAnswer(self._first[1], where=self.where, output=self.output)
        local = threading.local()

        def call() -> np.ndarray:
            send = getattr(local, "send", None)
            if send is None:
                send = local.send = self._request(self._client(x.shape[0]), x)
            return send()

        return call

    def stats(self) -> ServerTimes:
        client = self._client()
        try:
            return self._ask(read_statistics, client, self.protocol, self.model, self.where)
        finally:
            client.close()

    # The worker calls these around the timed part of every round.
    def round_started(self) -> None:
        self._round_start = self.stats()

    def round_finished(self) -> None:
        if self._round_start is not None:
            self.timed_total = self.timed_total.plus(self.stats().minus(self._round_start))
            self._round_start = None

    def server_times(self) -> dict[str, float | None]:
        """Per request over the timed rounds: mean queue and compute ms, and the mean batch Triton formed."""
        return self.timed_total.per_request()
