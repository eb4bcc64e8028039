"""Stages shared by ``export`` and ``optimize``: check, simplify, fuse, verify, each reported."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterator

import numpy as np
import onnx

from .._errors import VerificationError, first_line
from ..graph.io import check_onnx, op_counts
from ..graph.passes import run_passes
from ..graph.verify import Comparison, compare

__all__ = ["StageReport", "Stopwatch", "ort_outputs", "check_stage", "simplify_stage", "fuse_stage", "verify_or_raise"]

ProgressFn = Callable[[str], None]


@dataclass
class StageReport:
    """One stage of a pipeline: how long it took and the graph's op counts after it."""

    name: str
    seconds: float
    ops: dict[str, int]
    note: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Stopwatch:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    def __call__(self) -> float:
        return time.perf_counter() - self.start


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM while native code that replaces their handlers runs (onnxsim does:
    a Ctrl-C inside it killed the process before our cleanup ran), then restore our handlers
    and deliver what arrived, so the interruption unwinds through Python's ``finally`` blocks."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signals = {signal.SIGINT, signal.SIGTERM}
    handlers = {s: signal.getsignal(s) for s in signals}
    signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    try:
        yield
    finally:
        for sig, handler in handlers.items():
            if handler is not None:
                signal.signal(sig, handler)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, signals)


def ort_outputs(model: onnx.ModelProto | bytes, batch: np.ndarray) -> np.ndarray:
    """Run ``model`` on onnxruntime's CPU EP, graph optimizations off, so the graph itself is tested."""
    from ..runtime.execution import batched_outputs

    return batched_outputs(model, batch, optimization="disable")


def check_stage(model: onnx.ModelProto, source: str) -> StageReport:
    watch = Stopwatch()
    check_onnx(model, source, full=True)
    return StageReport("check", watch(), dict(op_counts(model)), "onnx.checker (full check) passed")


def simplify_stage(
    model: onnx.ModelProto, batch: np.ndarray, reference: np.ndarray, *, rtol: float
) -> tuple[onnx.ModelProto, StageReport]:
    """onnxsim, verified against ``reference``; on any failure the unsimplified graph is kept."""
    watch = Stopwatch()
    try:
        import onnxsim

        # BatchNormalization folding is ours (fold_conv_bn), verified and reported as such.
        with signals_deferred():
            simplified, ok = onnxsim.simplify(model, skip_fuse_bn=True)
    except Exception as exc:  # onnxsim raises arbitrary errors on graphs it cannot handle
        note = f"onnxsim failed ({type(exc).__name__}: {first_line(exc, 160)}); kept the unsimplified graph"
        return model, StageReport("simplify", watch(), dict(op_counts(model)), note)
    if not ok:
        return model, StageReport("simplify", watch(), dict(op_counts(model)),
                                  "onnxsim's own check failed; kept the unsimplified graph")
    parity = compare(ort_outputs(simplified, batch), reference, rtol=rtol)
    if not parity.ok:
        note = f"onnxsim output disagrees ({parity.describe()}); kept the unsimplified graph"
        return model, StageReport("simplify", watch(), dict(op_counts(model)), note)
    report = StageReport("simplify", watch(), dict(op_counts(simplified)), f"onnxsim, verified: {parity.describe()}")
    report.details["max_rel_error"] = parity.max_rel_error
    return simplified, report


def fuse_stage(model: onnx.ModelProto, target: str) -> StageReport:
    """Run our graph passes for ``target`` in place."""
    watch = Stopwatch()
    fusions = run_passes(model, target)
    check_onnx(model, "fused graph", full=True)
    applied = ", ".join(f"{name} x{n}" for name, n in fusions.items() if n) or "nothing to fuse"
    return StageReport("fuse", watch(), dict(op_counts(model)), applied, {"fusions": fusions})


def verify_or_raise(comparisons: list[Comparison], what: str) -> Comparison:
    worst = max(comparisons, key=lambda c: (c.top1_agreement < 1.0, c.max_rel_error))
    if not worst.ok:
        raise VerificationError(f"{what} disagrees with its source: {worst.describe()}")
    return worst
