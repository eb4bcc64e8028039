"""ONNX -> ONNX: simplify, fuse and verify a ResNet this toolkit did not export.

``portable`` keeps standard ONNX (no BatchNormalization or Identity left) and turns a
``com.microsoft.FusedConv`` of an earlier ``--target cpu`` run back into standard ops. ``cpu`` and
``cuda`` also fuse residual Add+Relu into onnxruntime's ``com.microsoft.FusedConv``. Parity is
checked with onnxruntime, original against optimized, on fixed-seed inputs of the model's own shape.

With ``features`` the classifier is cut off first (:mod:`.features_stage`): the file written is a
features file, its embedding checked against the source graph's own classifier input.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import onnx

from .._atomic import check_writable
from .._errors import InputError, OnnxModelError, RuntimeBackendError
from .._extras import require
from ..image_input import ImageInputRequest, classifier_and_spec
from .features_stage import FeaturesRequest, features_stage
from .image_input import image_input_stage
from ..graph.io import check_onnx, image_input, load_onnx, op_counts, save_onnx
from ..graph.passes import TARGETS
from ..graph.passes.unfuse_fused_conv import is_standard, nonportable_ops, unfuse_fused_conv
from .pipeline import StageReport, Stopwatch, check_stage, fuse_stage, ort_outputs, simplify_stage, verify_or_raise
from ..graph.fp16 import convert_fp16
from ..graph.verify import DEFAULT_RTOL, compare, fixed_inputs

__all__ = ["OptimizeResult", "optimize_file", "optimize_model", "portable_graph", "refuse_nonportable"]

# What each target must not contain after optimization.
_FORBIDDEN = {"portable": ("BatchNormalization", "Identity"), "cpu": ("BatchNormalization", "Identity"),
              "cuda": ("BatchNormalization", "Identity")}


@dataclass
class OptimizeResult:
    path: Path | None
    target: str
    stages: list[StageReport]
    max_rel_error: float
    top1_agreement: float
    size_bytes: int
    seconds: float
    model: onnx.ModelProto

    @property
    def fusions(self) -> dict[str, int]:
        return next((s.details.get("fusions", {}) for s in self.stages if s.name == "fuse"), {})

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path) if self.path else None,
            "target": self.target,
            "stages": [s.to_dict() for s in self.stages],
            "fusions": self.fusions,
            "max_rel_error": self.max_rel_error,
            "top1_agreement": self.top1_agreement,
            "size_bytes": self.size_bytes,
            "seconds": self.seconds,
        }


def optimize_model(
    model: onnx.ModelProto,
    target: str = "portable",
    *,
    source: str = "model",
    rtol: float = DEFAULT_RTOL,
    progress: Callable[[str], None] | None = None,
    features: FeaturesRequest | None = None,
) -> OptimizeResult:
    """Simplify and fuse ``model``: the result holds the optimized graph (``model``, not saved:
    ``path`` is None), the stage reports and its parity with ``model`` (with ``features``, with
    its classifier's input: the classifier is cut off first)."""
    total = Stopwatch()
    require("optimize", "onnxsim")  # the simplify stage is part of what optimize promises
    if target not in TARGETS:
        raise InputError(f"unknown target {target!r}; expected one of {', '.join(TARGETS)}")
    say = progress or (lambda _msg: None)
    stages = [StageReport("load", 0.0, dict(op_counts(model)), source)]
    cut_error = 0.0
    if features is not None:
        say("cutting the classifier off: the embedding it reads")
        model, report = features_stage(model, features, source=source, rtol=rtol)
        stages.append(report)
        cut_error = report.details["max_rel_error"]
    say("checking")
    stages.append(check_stage(model, source))
    if target == "portable":  # before the slow stages: what cannot become standard ONNX is refused now
        refuse_nonportable(model, source, "keep them with --target cpu or cuda, or re-export the model")
    image = image_input(model, source)
    shape = image.batch_shape(2 if image.shape[0] is None else 1)
    x = fixed_inputs(shape, seed=0)
    try:
        reference = ort_outputs(model, x)
    except RuntimeBackendError as exc:
        raise OnnxModelError(f"onnxruntime cannot run {source}: {exc}") from exc
    original = model
    model = onnx.ModelProto()
    model.CopyFrom(original)
    say("simplifying with onnxsim")
    model, report = simplify_stage(model, x, reference, rtol=rtol)
    stages.append(report)
    say("fusing")
    stages.append(fuse_stage(model, target))
    say("verifying against the original with onnxruntime")
    watch = Stopwatch()
    worst = verify_or_raise([compare(ort_outputs(model, x), reference, rtol=rtol)], f"the optimized {source}")
    left = {op: n for op, n in op_counts(model).items() if op in _FORBIDDEN[target]}
    if target in ("cpu", "cuda"):
        left.update(_unfused_add_relu(model))
    elif any(not is_standard(n) for n in model.graph.node):  # a portable output is standard ONNX, or nothing
        raise OnnxModelError(f"the portable graph of {source} still holds non-standard ops: {nonportable_ops(model)}")
    note = f"vs {'the features cut' if features else 'original'}, input {list(shape)}: {worst.describe()}"
    if left:
        note += f"; left in the graph: {left}"
    stages.append(StageReport("verify", watch(), dict(op_counts(model)), note, {"left": left}))
    return OptimizeResult(None, target, stages, max(cut_error, worst.max_rel_error), worst.top1_agreement,
                          model.ByteSize(), total(), model)


def refuse_nonportable(model: onnx.ModelProto, source: str, advice: str) -> None:
    """One line naming the ops outside standard ONNX that no pass of ours can rewrite."""
    left = nonportable_ops(model)
    if left:
        ops = ", ".join(f"{op} x{n}" for op, n in sorted(left.items()))
        raise OnnxModelError(f"{source} holds onnxruntime-specific ops with no standard ONNX form here ({ops}); "
                             f"{advice}")


def portable_graph(
    model: onnx.ModelProto, source: str, *, advice: str, rtol: float = DEFAULT_RTOL
) -> tuple[onnx.ModelProto, StageReport | None]:
    """``model`` as standard ONNX: the FusedConv of ``optimize --target cpu/cuda`` unfused to
    ``Conv + Add + Relu`` and verified against the fused graph; the report is None when the
    model was standard already. Other contrib ops are refused with ``advice``."""
    if all(is_standard(n) for n in model.graph.node):
        return model, None
    refuse_nonportable(model, source, advice)
    watch = Stopwatch()
    portable = onnx.ModelProto()
    portable.CopyFrom(model)
    changes = unfuse_fused_conv(portable).changes
    check_onnx(portable, f"the unfused graph of {source}", full=True)
    x = fixed_inputs(image_input(model, source).batch_shape(2), seed=0)
    parity = verify_or_raise([compare(ort_outputs(portable, x), ort_outputs(model, x), rtol=rtol)],
                             f"the unfused graph of {source}")
    note = (f"{changes} com.microsoft.FusedConv unfused to standard Conv + Add + Relu; "
            f"vs the fused graph: {parity.describe()}")
    return portable, StageReport("unfuse", watch(), dict(op_counts(portable)), note,
                                 {"unfused": changes, "max_rel_error": parity.max_rel_error})


def _unfused_add_relu(model: onnx.ModelProto) -> dict[str, int]:
    relu_inputs = {n.input[0] for n in model.graph.node if n.op_type == "Relu"}
    count = sum(1 for n in model.graph.node if n.op_type == "Add" and n.output[0] in relu_inputs)
    return {"Add->Relu": count} if count else {}


FP16_RTOL = 1e-2  # float16 keeps ~3 significant digits; top-1 must still agree


def optimize_file(
    path: str | Path,
    output: str | Path,
    target: str = "portable",
    *,
    precision: str = "fp32",
    rtol: float = DEFAULT_RTOL,
    progress: Callable[[str], None] | None = None,
    image_input: ImageInputRequest | None = None,
    features: FeaturesRequest | None = None,
    force: bool = True,
) -> OptimizeResult:
    """Load, optimize, verify and atomically save an ONNX file (with ``force=False`` never over
    an existing file, even one created while this ran).

    ``precision="fp16"`` converts the optimized graph to float16 for GPU providers (inputs and
    outputs stay float32) and verifies it against the fp32 graph with a float16 tolerance.

    ``image_input`` puts the preprocessing in the graph (uint8 RGB images in, verified on photos).
    A file that has it already is optimized without it, and it is put back in float (verified).

    ``features`` writes a features file (``embedding`` out, L2-normalised if asked) of the classifier.
    """
    require("optimize", "onnxsim")
    if precision not in ("fp32", "fp16"):
        raise InputError(f"unknown precision {precision!r}; expected fp32 or fp16")
    if precision == "fp16" and target == "cpu":
        raise InputError("fp16 is for GPU providers: use --target cuda or portable with --precision fp16")
    if features is not None and image_input is not None and image_input.top_k:
        raise InputError("a features file has no classes to rank: drop --image-input-top-k")
    total = Stopwatch()
    output = check_writable(output)
    model = load_onnx(path)
    model, spec = classifier_and_spec(model, image_input, source=str(path))
    if features is not None and spec is not None and spec.top_k:
        raise OnnxModelError(f"{path} ranks classes in the graph (top-k {spec.top_k}); "
                             "a features file has none to rank: give the float classifier")
    # FusedConv is an fp32 contrib kernel; for fp16 the GPU provider fuses at session creation.
    passes_target = "portable" if precision == "fp16" else target
    optimized = optimize_model(model, passes_target, source=str(path), rtol=rtol, progress=progress, features=features)
    model, stages, rel, top1 = optimized.model, optimized.stages, optimized.max_rel_error, optimized.top1_agreement
    if precision == "fp16":
        model, report = _fp16_stage(model, str(path))
        stages.append(report)
        # The file written is the fp16 one: its error is the summary's, not the fp32 passes' 0.
        rel, top1 = max(rel, report.details["max_rel_error"]), min(top1, report.details["top1_agreement"])
    if spec is not None:
        say = progress or (lambda _msg: None)
        say("putting the preprocessing in the graph and verifying it on photos")
        model, report = image_input_stage(model, spec, source=str(path))
        stages.append(report)
    watch = Stopwatch()
    size = save_onnx(model, output, replace=force)
    stages.append(StageReport("save", watch(), dict(op_counts(model)), f"{size / 1e6:.1f} MB, atomic write"))
    return OptimizeResult(Path(output), target, stages, rel, top1, size, total(), model)


def _fp16_stage(model: onnx.ModelProto, source: str) -> tuple[onnx.ModelProto, StageReport]:
    watch = Stopwatch()
    x = fixed_inputs(image_input(model, source).batch_shape(2), seed=1)
    converted, kept = convert_fp16(model)
    parity = verify_or_raise([compare(ort_outputs(converted, x), ort_outputs(model, x), rtol=FP16_RTOL)],
                             f"the fp16 conversion of {source}")
    note = (f"float16 weights and activations, float32 inputs/outputs; ops kept in fp32: {', '.join(kept) or 'none'}; "
            f"vs fp32: {parity.describe()}")
    return converted, StageReport("fp16", watch(), dict(op_counts(converted)), note,
                                  {"kept_fp32": kept, "max_rel_error": parity.max_rel_error,
                                   "top1_agreement": parity.top1_agreement})
