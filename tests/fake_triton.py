"""A fake Triton server for the client side of ``bench --url``: a test fixture, not a product.

It speaks enough of Triton's HTTP/REST and gRPC protocols for ``tritonclient`` (readiness, the
model's metadata and statistics, inference) and answers inference the way a broken server
would: ``hang`` never answers, ``shape`` answers ``[N, 5]``, ``nan`` all NaN, ``inf`` one +Inf,
``wide`` ImageNet's 1000 classes, ``int`` integers. The ``once-`` modes answer right the first time
and wrong afterwards, as a server that breaks only under load: ``once-nan`` all NaN,
``once-shape`` ``[N, 5]``, ``once-dtype`` the same numbers in float64, ``once-wrong`` finite
numbers of another input; ``late-wrong`` is right twice (bench's first answer and the untimed
call of its second request thread) and wrong on the timed requests. The real server cannot be
made to do any of these on purpose.

Slow and large answers: ``drip`` sends an answer's headers at once and then one byte of it every
:data:`DRIP_S` (over gRPC a relay in front of the server drips every byte it sends once an
inference has been asked for); ``huge`` answers inference with ``Content-Length`` 8 GiB over HTTP
and with 10 MB of logits over gRPC, ``huge-unsized`` the same HTTP body without a
``Content-Length`` (over gRPC, as ``huge``). Each HTTP one streams at most :data:`HUGE_SENT` bytes
of it, so that a client without a bound fails on the truncated body instead of running out of
memory. ``gzip`` answers 2 MB of zeros compressed to a few KB (unasked, over both protocols).
``lying-shape`` sends 10 values under the shape ``[N, 2^40]``, which tritonclient cannot read;
``text-header-length`` (HTTP) an ``Inference-Header-Content-Length`` that is not a number.

Other modes answer inference right but break the protocol elsewhere: ``metrics`` answers every
HTTP request with Prometheus text, as Triton's metrics port does; ``no-inputs``, ``empty-inputs``
and ``no-outputs`` leave out the model metadata's tensors, ``no-stats`` and ``empty-stats`` the
statistics' ``model_stats`` (gRPC cannot tell a missing list from an empty one), ``huge-meta``
sends metadata of 8 GiB by its ``Content-Length`` over HTTP and 5 MB over gRPC.
"""

from __future__ import annotations

import gzip
import json
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

import numpy as np

from .drip_relay import drip_relay

WRONG_ANSWERS = ("hang", "shape", "nan", "inf", "wide", "int", "once-nan", "once-shape", "once-dtype", "once-wrong",
                 "late-wrong", "drip", "huge", "huge-unsized", "gzip", "error-esc", "lying-shape",
                 "text-header-length")
WRONG_REPLIES = ("metrics", "no-inputs", "empty-inputs", "no-outputs", "no-stats", "empty-stats", "huge-meta",
                 "slow-meta")  # right answers
MODES = WRONG_ANSWERS + WRONG_REPLIES
_RIGHT = {"once": 1, "late": 2}  # how many answers the modes of this prefix get right
NAME, INPUT, OUTPUT = "resnet20", "input", "logits"
_DATATYPES = {np.dtype(np.float32): "FP32", np.dtype(np.float64): "FP64", np.dtype(np.int64): "INT64"}
DRIP_S = 0.2  # between two bytes of a dripped answer: under any --request-timeout a test gives
HUGE_CLAIMED, HUGE_SENT = 8 << 30, 64 << 20  # what a huge HTTP reply claims, and sends at most
ESCAPES = "\x1b]0;PWNED\x07\x1b[2K\x1b[31mred"  # what error-esc's refusals say: retitle, erase the line, red
LIE = 2**40  # the width lying-shape's answers claim for their 10 values
SLOW_META_S = 30.0  # how long slow-meta takes to answer its metadata: past bench's 5 s check


def answer(mode: str, batch: int, call: int = 1) -> np.ndarray:
    """What the fake answers to its ``call``-th request, a batch of ``batch`` (every mode but ``hang``)."""
    prefix, _, wrong = mode.partition("-")
    if mode in WRONG_REPLIES or mode == "drip":
        mode = "right"
    elif prefix in _RIGHT:
        mode = "right" if call <= _RIGHT[prefix] else wrong
    width = {"shape": 5, "wide": 1000, "huge": 2_500_000, "huge-unsized": 2_500_000, "gzip": 500_000}.get(mode, 10)
    logits = np.random.default_rng(1 if mode == "wrong" else 0).standard_normal((batch, width)).astype(np.float32)
    if mode == "nan":
        logits[:] = np.nan
    elif mode == "inf":
        logits[0, 3] = np.inf
    elif mode == "dtype":
        return logits.astype(np.float64)
    elif mode == "int":
        return (logits * 1000).astype(np.int64)
    elif mode == "gzip":
        return np.zeros_like(logits)
    return logits


class FakeTriton:
    """``with FakeTriton(mode) as fake:`` -- ``fake.http`` and ``fake.grpc`` are ``host:port``."""

    def __init__(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, received {mode!r}")
        self.mode = mode
        self.stopped = threading.Event()  # a hanging request returns when the fake stops
        self.dripping = threading.Event()  # drip: an inference was asked for over gRPC
        self._calls = 0
        self._lock = threading.Lock()

    def answer(self, batch: int) -> np.ndarray:
        """The answer to the next inference request, over either protocol."""
        with self._lock:
            self._calls += 1
            call = self._calls
        return answer(self.mode, batch, call)

    # -- HTTP/REST ----------------------------------------------------------------------------------

    def _http_server(self) -> ThreadingHTTPServer:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _json(self, payload: Any, status: int = 200, *, compress: bool = False) -> None:
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                if compress:
                    body = gzip.compress(body)
                    self.send_header("Content-Encoding", "gzip")
                if fake.mode == "text-header-length" and self.command == "POST":
                    self.send_header("Inference-Header-Content-Length", "abc")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _huge(self, head: bytes, *, sized: bool = True) -> None:
                """A reply that claims (or, unsized, runs to) 8 GiB, of which HUGE_SENT is sent."""
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                if sized:
                    self.send_header("Content-Length", str(HUGE_CLAIMED))
                self.end_headers()
                try:
                    self.wfile.write(head)
                    for _ in range(HUGE_SENT >> 20):
                        self.wfile.write(b"1," * (1 << 19))
                except OSError:  # the client stopped reading
                    pass
                self.close_connection = True

            def _drip(self, body: bytes) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.flush()
                try:
                    for i in range(len(body)):
                        if fake.stopped.wait(DRIP_S):
                            return
                        self.wfile.write(body[i : i + 1])
                        self.wfile.flush()
                except OSError:
                    pass

            def _metrics(self) -> None:
                body = b"# HELP nv_inference_request_success Number of successful inference requests\n"
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                if fake.mode == "metrics":
                    self._metrics()
                elif self.path in ("/v2/health/ready", "/v2/health/live", f"/v2/models/{NAME}/ready"):
                    self._json({})
                elif self.path == f"/v2/models/{NAME}" and fake.mode == "slow-meta":
                    fake.stopped.wait(SLOW_META_S)
                    self._json(fake.metadata())
                elif self.path == f"/v2/models/{NAME}" and fake.mode == "huge-meta":
                    self._huge(b'{"name": "resnet20", "platform": "')
                elif self.path == f"/v2/models/{NAME}":
                    self._json(fake.metadata())
                elif self.path == f"/v2/models/{NAME}/stats":
                    self._json(fake.statistics())
                else:
                    self._json({"error": "not found"}, 404)

            def do_POST(self) -> None:  # noqa: N802
                header = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if fake.mode == "metrics":
                    self._metrics()
                    return
                if fake.mode == "hang":
                    fake.stopped.wait()
                    return
                if fake.mode == "error-esc":
                    self._json({"error": ESCAPES}, 500)
                    return
                if fake.mode in ("huge", "huge-unsized"):
                    self._huge(b'{"outputs": [{"name": "logits", "datatype": "FP32", "shape": [1, 10], "data": [',
                               sized=fake.mode == "huge")
                    return
                text = json.loads(header[: int(self.headers.get("Inference-Header-Content-Length", len(header)))])
                batch = int(text["inputs"][0]["shape"][0])
                logits = fake.answer(batch)
                data = [None if not np.isfinite(v) else v.item() for v in logits.ravel()]
                answer = {"model_name": NAME, "outputs": [{"name": OUTPUT, "datatype": _DATATYPES[logits.dtype],
                                                           "shape": fake.shape(logits), "data": data}]}
                if fake.mode == "drip":
                    self._drip(json.dumps(answer).encode())
                else:
                    self._json(answer, compress=fake.mode == "gzip")

        return ThreadingHTTPServer(("127.0.0.1", 0), Handler)

    # -- gRPC ---------------------------------------------------------------------------------------

    def _grpc_server(self) -> Any:
        import grpc
        from google.protobuf import json_format
        from tritonclient.grpc import service_pb2 as pb
        from tritonclient.grpc import service_pb2_grpc as rpc

        fake = self

        class Service(rpc.GRPCInferenceServiceServicer):
            def ServerLive(self, request: Any, context: Any) -> Any:  # noqa: N802 - the service's names
                return pb.ServerLiveResponse(live=True)

            def ServerReady(self, request: Any, context: Any) -> Any:  # noqa: N802
                return pb.ServerReadyResponse(ready=True)

            def ModelReady(self, request: Any, context: Any) -> Any:  # noqa: N802
                return pb.ModelReadyResponse(ready=request.name == NAME)

            def ModelMetadata(self, request: Any, context: Any) -> Any:  # noqa: N802
                if fake.mode == "slow-meta":
                    fake.stopped.wait(SLOW_META_S)
                return json_format.ParseDict(fake.metadata(), pb.ModelMetadataResponse())

            def ModelStatistics(self, request: Any, context: Any) -> Any:  # noqa: N802
                return json_format.ParseDict(fake.statistics(), pb.ModelStatisticsResponse())

            def ModelInfer(self, request: Any, context: Any) -> Any:  # noqa: N802
                if fake.mode == "hang":
                    fake.stopped.wait()
                    context.abort(grpc.StatusCode.UNAVAILABLE, "stopped")
                if fake.mode == "error-esc":
                    context.abort(grpc.StatusCode.INTERNAL, ESCAPES)
                fake.dripping.set()  # the relay drips what the server sends from now on
                if fake.mode == "gzip":
                    context.set_compression(grpc.Compression.Gzip)
                logits = fake.answer(int(request.inputs[0].shape[0]))
                tensor = pb.ModelInferResponse.InferOutputTensor(name=OUTPUT, datatype=_DATATYPES[logits.dtype],
                                                                 shape=fake.shape(logits))
                return pb.ModelInferResponse(
                    model_name=NAME, model_version="1", outputs=[tensor],
                    raw_output_contents=[logits.tobytes()])

        server = grpc.server(futures.ThreadPoolExecutor(max_workers=16),
                             options=[("grpc.max_send_message_length", 2**31 - 1)])
        rpc.add_GRPCInferenceServiceServicer_to_server(Service(), server)
        self.grpc_port = server.add_insecure_port("127.0.0.1:0")
        return server

    # -- both ---------------------------------------------------------------------------------------

    def shape(self, logits: np.ndarray) -> list[int]:
        """The shape an answer claims: its own, but for lying-shape's."""
        return [logits.shape[0], LIE] if self.mode == "lying-shape" else list(logits.shape)

    def metadata(self) -> dict[str, Any]:
        meta = {"name": NAME, "versions": ["1"], "platform": "x" * (5 << 20) if self.mode == "huge-meta" else "python",
                "inputs": [{"name": INPUT, "datatype": "FP32", "shape": [-1, 3, 32, 32]}],
                "outputs": [{"name": OUTPUT, "datatype": "FP32", "shape": [-1, 10]}]}
        if self.mode == "no-inputs":
            del meta["inputs"]
        elif self.mode == "empty-inputs":
            meta["inputs"] = []
        elif self.mode == "no-outputs":
            del meta["outputs"]
        return meta

    def statistics(self) -> dict[str, Any]:
        once = {"count": 1, "ns": 1000}
        stats = [{"name": NAME, "version": "1", "execution_count": 1,
                  "inference_stats": {k: once for k in ("success", "queue", "compute_input",
                                                        "compute_infer", "compute_output")}}]
        return {} if self.mode == "no-stats" else {"model_stats": [] if self.mode == "empty-stats" else stats}

    def __enter__(self) -> "FakeTriton":
        self._http = self._http_server()
        threading.Thread(target=self._http.serve_forever, daemon=True).start()
        self._grpc = self._grpc_server()
        self._grpc.start()
        self._relay = drip_relay(self.grpc_port, self.dripping, self.stopped, DRIP_S) if self.mode == "drip" else None
        return self

    @property
    def http(self) -> str:
        return f"127.0.0.1:{self._http.server_address[1]}"

    @property
    def grpc(self) -> str:
        return f"127.0.0.1:{self._relay.getsockname()[1] if self._relay else self.grpc_port}"

    def __exit__(self, *exc: Any) -> None:
        self.stopped.set()
        if self._relay:
            self._relay.close()
        self._http.shutdown()
        self._http.server_close()
        self._grpc.stop(grace=0)


def running(mode: str) -> Iterator[FakeTriton]:
    """A pytest fixture body: the fake for ``mode``, stopped after the test."""
    with FakeTriton(mode) as fake:
        yield fake
