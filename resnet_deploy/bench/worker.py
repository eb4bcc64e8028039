"""One engine at one batch size in its own process: ``python -m resnet_deploy.bench.worker SPEC.json``.

A fresh process per engine keeps thread pools (PyTorch's, onnxruntime's, OpenVINO's) from
competing and makes the memory figures the engine's own: the kernel's high-water mark
(``VmHWM``) is per process after ``execve`` and is reset at start where allowed (``ru_maxrss``
is not usable: it survives ``fork`` and ``execve`` and reports the parent's peak).

The worker builds its backend, runs the input once (the output goes to a file for the error
against the baseline), warms up and says :class:`Ready`. The parent then drives it over
stdin/stdout, one JSON line per message: a :class:`RoundRequest` per interleaved round, then a
:class:`FinishRequest`. Only the protocol goes to the real stdout; anything a native library
prints lands on stderr. This module must not import torch (or the exporter) at module level.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from resnet_deploy._errors import first_line
from resnet_deploy._owned import die_with_parent
from resnet_deploy.bench import timing
from resnet_deploy.bench.backends import BACKENDS
from resnet_deploy.bench.schema import (
    PARENT_ENV, EngineGone, Failure, FinishRequest, Finished, Ready, RoundRequest, RoundResult, WorkerSpec,
    decode, encode,
)


def reset_peak_memory() -> None:
    """Reset VmHWM to the current RSS (``echo 5 > /proc/self/clear_refs``, Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:  # not permitted or not Linux: the peak then counts from exec, still our own
        pass


def status_mb(key: str) -> float | None:
    """A ``/proc/self/status`` memory field (``VmHWM``, ``VmRSS``) in MB, or None off Linux."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


class Measurement:
    """The backend, its prepared calls and what was learnt while building them."""

    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec
        backend_cls = BACKENDS.get(spec.engine.backend)
        if backend_cls is None:
            raise ValueError(f"unknown backend {spec.engine.backend!r}; this worker has {', '.join(BACKENDS)}")
        self.x = np.load(spec.input_path)
        start = time.perf_counter()
        self.backend = backend_cls(spec)
        created = time.perf_counter()
        output = self.backend.infer(self.x)
        first = time.perf_counter()
        np.save(spec.output_path, np.asarray(output, dtype=np.float32))
        # One prepared call per request thread, all against the one shared model.
        self.calls = [self.backend.timed(self.x) for _ in range(spec.concurrency)]
        # A served model's: every answer is the first again (run outside the timed interval).
        self.check: timing.Check | None = getattr(self.backend, "check_answer", None)
        for _ in range(spec.warmup):
            self._untimed(self.calls[0])
        for call in self.calls[1:]:
            self._untimed(call)
        self.rss_mb: float | None = None
        self.ready = Ready(os.getpid(), (created - start) * 1000.0, (first - created) * 1000.0, "torch" in sys.modules)

    def _untimed(self, call: timing.Call) -> None:
        result = call()
        if self.check is not None:
            self.check(result)

    def round(self, request: RoundRequest) -> RoundResult:
        batch = self.spec.batch_size
        for _ in range(request.warmup):
            for call in self.calls:
                self._untimed(call)
        getattr(self.backend, "round_started", lambda: None)()  # a served model: the server's statistics
        if len(self.calls) == 1:
            t0 = time.perf_counter()
            latencies = timing.time_round(self.calls[0], duration=request.duration, iterations=request.iterations,
                                          min_iterations=request.min_iterations, check=self.check)
            wall = time.perf_counter() - t0
        else:
            latencies, wall = timing.time_concurrent(self.calls, duration=request.duration,
                                                     iterations=request.iterations,
                                                     min_iterations=request.min_iterations, check=self.check)
        getattr(self.backend, "round_finished", lambda: None)()
        self.rss_mb = status_mb("VmRSS")
        return RoundResult(latencies, wall, batch * len(latencies))

    def finish(self) -> Finished:
        peak = status_mb("VmHWM")  # before the evaluation data is loaded
        rss = self.rss_mb if self.rss_mb is not None else status_mb("VmRSS")
        accuracy = self._accuracy() if self.spec.eval_x_path else None
        server = getattr(self.backend, "server_times", dict)()
        return Finished(peak, rss, accuracy, "torch" in sys.modules, **server)

    def _accuracy(self) -> float:
        ex, ey = np.load(self.spec.eval_x_path), np.load(self.spec.eval_y_path)  # type: ignore[arg-type]
        batch = self.spec.batch_size
        correct = 0
        for i in range(0, len(ex), batch):
            chunk = ex[i : i + batch]
            n = len(chunk)
            if n < batch:  # keep the engine's batch size (static shapes): pad, then drop the extra rows
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], batch - n, axis=0)])
            pred = self.backend.infer(np.ascontiguousarray(chunk, dtype=self.x.dtype)).argmax(1)[:n]
            correct += int(np.sum(pred == ey[i : i + n]))
        return correct / len(ex)


def _protocol_channel() -> TextIO:
    """The real stdout for protocol lines; fd 1 (native libraries' prints) goes to stderr."""
    fd = os.dup(1)
    os.dup2(2, 1)
    return os.fdopen(fd, "w", buffering=1)


def serve(spec_path: str, channel: TextIO, commands: TextIO) -> int:
    def send(message: Any) -> None:
        channel.write(encode(message) + "\n")
        channel.flush()

    try:
        measurement = Measurement(WorkerSpec.from_json(Path(spec_path).read_text()))
    except Exception as exc:  # reported to the parent as a failed record, never a traceback
        send(Failure(f"{type(exc).__name__}: {first_line(exc)}", engine_gone=isinstance(exc, EngineGone)))
        return 1
    send(measurement.ready)
    while True:
        line = commands.readline()
        if not line:  # the parent is gone
            return 1
        try:
            message = decode(line)
            if isinstance(message, RoundRequest):
                send(measurement.round(message))
            elif isinstance(message, FinishRequest):
                send(measurement.finish())
                return 0
            else:
                send(Failure(f"unexpected message {type(message).__name__}"))
        except Exception as exc:
            send(Failure(f"{type(exc).__name__}: {first_line(exc)}", engine_gone=isinstance(exc, EngineGone)))
            return 1


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    die_with_parent()  # a SIGKILLed bench takes its worker along (mid-round it reads nothing from bench)
    if os.environ.get(PARENT_ENV, str(os.getppid())) != str(os.getppid()):
        return 1  # bench died before the request above was made
    channel = _protocol_channel()
    reset_peak_memory()
    try:
        return serve(args[0], channel, sys.stdin)
    except KeyboardInterrupt:  # the parent was interrupted; it reports that
        return 130


if __name__ == "__main__":
    sys.exit(main())
