"""How tune judges one measured candidate: verified or not, of which kind, and why in words."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from ..bench.schema import Record
from ..graph.verify import DEFAULT_RTOL
from ..precision.holdout import HELD_OUT_TOLERANCE, HeldOut

__all__ = ["Verdict", "VerdictKind", "HeldOut", "judge", "TOLERANCES", "TF32_TOLERANCE"]

# Max relative logit error against the fp32 file on the CPU EP, per precision. fp32: the
# export's own parity tolerance. bf16/fp16 keep 8/11 mantissa bits (measured 2.9e-3 and 1e-3 on
# ResNets). INT8: quantize's held-out tolerance (resnet_deploy.precision.holdout); accuracy on
# real data (eval data) is the test that matters and is applied on top.
TOLERANCES = {"fp32": DEFAULT_RTOL, "bf16": 2e-2, "fp16": 2e-2, "int8": HELD_OUT_TOLERANCE}
# fp32 on NVIDIA GPUs: onnxruntime's CUDA EP runs convolutions in TF32 by default (`use_tf32`,
# default 1; 10 mantissa bits, like fp16): 3.5e-4 to 5.4e-4 measured on an H200, so the fp32 CPU
# tolerance would reject every CUDA fp32 candidate for a choice onnxruntime makes by default.
TF32_TOLERANCE = 2e-3


class VerdictKind(Enum):
    """The verdict in one word; its value is the table's short label."""

    VERIFIED = "ok"
    NOISY = "ok, noisy"  # verified, with unstable timing
    FAILED = "failed"  # the engine did not run
    NO_OUTPUT = "no output"
    SYNTHETIC = "synthetic cal"  # INT8 calibrated on synthetic inputs: measured, never chosen
    CPU_CLASS = "needs VNNI"  # INT8 made for kernels this CPU lacks: chosen only if --eval-data shows it holds
    NO_DATA = "needs eval data"  # INT8 with nothing real to judge it on
    ERROR = "error > tol"
    ACCURACY = "accuracy"

    @property
    def verified(self) -> bool:
        return self in (VerdictKind.VERIFIED, VerdictKind.NOISY)


@dataclass(frozen=True)
class Verdict:
    record: Record
    backend: str  # the benchmark backend that ran it: "onnxruntime" or "openvino-runtime"
    session: dict[str, Any]  # SessionConfig fields for the profile
    kind: VerdictKind
    reason: str

    @property
    def verified(self) -> bool:
        return self.kind.verified


def judge(record: Record, backend: str, session: dict[str, Any], reference: Record, *, max_accuracy_drop: float,
          synthetic: bool, heldout: HeldOut | None = None, kernels_warning: str | None = None) -> Verdict:
    """The verdict on ``record`` against the ``reference`` (the fp32 file on the CPU EP).
    ``kernels_warning``: why the INT8 file's kernels are not this CPU's (``int8_kernels_warning``),
    or None."""
    def verdict(kind: VerdictKind, reason: str) -> Verdict:
        return Verdict(record, backend, session, kind, reason)

    noisy = " (unstable timing)" if record.unstable else ""
    if record.error:
        return verdict(VerdictKind.FAILED, f"failed: {record.error}")
    if record.max_rel_error is None:
        return verdict(VerdictKind.NO_OUTPUT, "no output to compare")
    if record.precision == "int8" and synthetic:
        return verdict(VerdictKind.SYNTHETIC, "synthetic calibration (pass --calibration)")
    measured = record.accuracy is not None and reference.accuracy is not None
    tf32 = record.precision == "fp32" and record.provider in ("cuda", "tensorrt")
    tolerance = TF32_TOLERANCE if tf32 else TOLERANCES[record.precision]
    if (record.precision == "int8" and kernels_warning is not None and not measured
            and record.provider in ("cpu", "openvino")):
        return verdict(VerdictKind.CPU_CLASS, "made for CPUs with VNNI and this CPU has none: --eval-data decides "
                                              "(or tune with --target-cpu any)")
    if record.precision == "int8" and not measured:
        # INT8 is judged on real inputs, never on the fixed standard-normal one: far from what it
        # was calibrated on, its logit error there says nothing (good calibrations failed, noise passed).
        if heldout is None:
            return verdict(VerdictKind.NO_DATA,
                           "no data to judge INT8 on: pass --eval-data (or 8+ calibration samples)")
        if heldout.max_rel_error > tolerance:
            return verdict(VerdictKind.ERROR, f"error {heldout.max_rel_error:.1e} > {tolerance:g} on {heldout.samples} "
                                              "held-out calibration samples")
        return verdict(VerdictKind.VERIFIED, f"verified on {heldout.samples} held-out calibration samples (error "
                                             f"{heldout.max_rel_error:.1e}); accuracy unmeasured: "
                                             f"--eval-data decides{noisy}")
    if record.max_rel_error > tolerance and record.precision != "int8":
        return verdict(VerdictKind.ERROR,
                       f"error {record.max_rel_error:.1e} > {tolerance:g}" + (" (TF32)" if tf32 else ""))
    if measured:
        drop = (reference.accuracy - record.accuracy) * 100  # type: ignore[operator]
        if drop > max_accuracy_drop:
            return verdict(VerdictKind.ACCURACY, f"accuracy -{drop:.2f} pt > {max_accuracy_drop:g}")
    return verdict(VerdictKind.NOISY if record.unstable else VerdictKind.VERIFIED, "verified" + noisy)
