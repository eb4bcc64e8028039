"""Lower precision: static INT8 (QDQ) with onnxruntime's quantization tools, and FP16.

INT8: ``quant_pre_process`` (shape inference and ORT's graph optimizations), then
``quantize_static`` in QDQ format with per-channel weight scales, calibrated on real inputs
(``minmax``, ``entropy`` or ``percentile``), uint8 activations and int8 weights: 8-bit for CPUs
with VNNI, 7-bit (``reduce_range``) for any CPU (``target_cpu``, recorded as ``int8_kernels``).
The result is checked against the fp32 model on the calibration inputs, and by
:func:`quantize_file` on calibration samples held out of the calibration, on this machine
(:mod:`.holdout`): top-1 agreement and max relative error are reported, never hidden, and a
held-out error over the tolerance is warned about.

A file from ``optimize --target cpu/cuda`` is quantized from its standard-ONNX form (FusedConv
unfused and verified first, and said so); a model with a fixed batch is calibrated and checked in
batches of that size.
"""

from __future__ import annotations

import contextlib
import sys
import warnings
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import onnx

from .._atomic import check_writable
from .._errors import InputError
from .._machine import cpu_model, int8_kernels
from .._owned import owned_tempdir
from .calibration import DEFAULT_MAX_SAMPLES, fixed_batches, load_samples
from ..export.image_input import image_input_stage
from ..graph.io import image_input, read_metadata, save_onnx, write_metadata
from ..export.pipeline import Stopwatch
from ..graph.fp16 import convert_fp16, is_quantized  # noqa: F401  (convert_fp16 re-exported)
from .fidelity import Fidelity, fidelity, outputs_embeddings
from .holdout import HeldOut, check_held_out, split_held_out
from .recipes import CALIBRATION_METHODS, DEFAULT_RECIPE, RECIPES, TARGET_CPUS, QuantRecipe, target_kernels
from .source import check_quantizable, load_classifier, load_quantizable  # noqa: F401  (load_quantizable re-exported)

__all__ = [
    "QuantizeResult", "QuantRecipe", "RECIPES", "DEFAULT_RECIPE", "quantize_file", "quantize_model", "convert_fp16",
    "CALIBRATION_METHODS", "TARGET_CPUS", "is_quantized", "load_quantizable",
]

@dataclass
class QuantizeResult:
    path: Path | None
    precision: str
    method: str
    samples: int
    size_before: int
    size_after: int
    top1_agreement: float | None  # None for a features file: no classes, judged by cosine similarity
    max_rel_error: float
    seconds: float
    model: onnx.ModelProto = field(repr=False, compare=False)  # the quantized graph (as saved, by quantize_file)
    int8_kernels: str = "vnni"  # the CPU class it was made for (its metadata): "vnni" or "any"
    synthetic: bool = False
    notes: list[str] = field(default_factory=list)  # what was done that the user did not ask for
    heldout: HeldOut | None = None  # quantize_file: against fp32 on calibration samples held out, on this CPU
    cosine_min: float | None = None  # a features file's embeddings against fp32's, on the calibration inputs
    cosine_mean: float | None = None

    @property
    def fidelity(self) -> Fidelity:
        return Fidelity(self.max_rel_error, self.top1_agreement, self.cosine_min, self.cosine_mean)

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "model"}
        out["path"] = str(self.path) if self.path else None
        out["notes"] = list(self.notes)
        out["heldout"] = None if self.heldout is None else {**asdict(self.heldout), "holds": self.heldout.holds}
        return out


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over an in-memory array: one sample per
    batch, or batches of the model's fixed size."""

    def __init__(self, name: str, samples: np.ndarray, batch: int | None) -> None:
        self._name = name
        self._batches = fixed_batches(samples, batch) if batch else [samples[i : i + 1] for i in range(len(samples))]
        self._i = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._i >= len(self._batches):
            return None
        self._i += 1
        return {self._name: self._batches[self._i - 1]}

    def rewind(self) -> None:
        self._i = 0


def quantize_model(
    model: onnx.ModelProto,
    samples: np.ndarray,
    *,
    method: str = "minmax",
    recipe: QuantRecipe = DEFAULT_RECIPE,
    target_cpu: str = "auto",
    source: str = "model",
    keep_float: Sequence[str] = (),
) -> QuantizeResult:
    """Static INT8 of ``model``: the result holds the quantized graph (``model``, not saved:
    ``path`` is None) and its max rel error against ``model`` on ``samples``, with the top-1
    agreement of a classifier or the cosine similarities of a features file (:mod:`.fidelity`).

    ``target_cpu`` (:data:`TARGET_CPUS`) decides the weights' range: 8-bit for ``vnni``, 7-bit
    (onnxruntime's ``reduce_range``) for ``any``; ``auto`` is this machine's class. The file
    records it as ``int8_kernels``, which Predictor, bench and tune check against the CPU.

    ``keep_float`` names blocks (``stem``, ``layer1.0``, ..., ``head``, as :mod:`.blocks` finds
    them) whose nodes onnxruntime's quantizer leaves in float (``nodes_to_exclude``).
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    watch = Stopwatch()
    if method not in CALIBRATION_METHODS:
        raise InputError(f"unknown calibration method {method!r}; expected one of {', '.join(CALIBRATION_METHODS)}")
    kernels = target_kernels(target_cpu)
    check_quantizable(model, source)
    image = image_input(model, source)
    calibrate = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                 "percentile": CalibrationMethod.Percentile}[method]
    types = {"u8": QuantType.QUInt8, "s8": QuantType.QInt8}
    with owned_tempdir("resnet-deploy-quant-") as tmp:
        fp32_path, pre_path, q_path = Path(tmp, "fp32.onnx"), Path(tmp, "pre.onnx"), Path(tmp, "int8.onnx")
        onnx.save(model, str(fp32_path))
        quant_pre_process(str(fp32_path), str(pre_path))
        excluded = _block_nodes(onnx.load(str(pre_path)), keep_float, source) if keep_float else []
        # onnxruntime's entropy/percentile calibrators print progress with print(): stdout is ours.
        with contextlib.redirect_stdout(sys.stderr):
            quantize_static(
                str(pre_path),
                str(q_path),
                _Reader(image.name, samples, image.shape[0]),
                quant_format=QuantFormat.QDQ if recipe.fmt == "qdq" else QuantFormat.QOperator,
                per_channel=recipe.per_channel,
                activation_type=types[recipe.activations],
                weight_type=types[recipe.weights],
                op_types_to_quantize=None if recipe.all_ops else ["Conv", "Gemm"],
                calibrate_method=calibrate,
                reduce_range=kernels == "any",
                nodes_to_exclude=excluded,
                extra_options={"CalibTensorRangeSymmetric": False, "CalibMovingAverage": False},
            )
        quantized = onnx.load(str(q_path))
    # Keep the fp32 model's metadata (preprocessing, labels) and record the precision.
    del quantized.metadata_props[:]
    quantized.metadata_props.extend(model.metadata_props)
    weights = "7-bit weights (reduce_range): any CPU" if kernels == "any" else "8-bit weights: CPUs with VNNI"
    write_metadata(quantized, {"precision": "int8",
                               "quantization": f"static {recipe.describe()}, {weights}, {method} calibration",
                               "int8_kernels": kernels})
    if keep_float:
        write_metadata(quantized, {"float_blocks": ",".join(keep_float)})
    found = fidelity(_outputs(quantized, samples), _outputs(model, samples), embeddings=outputs_embeddings(model))
    return QuantizeResult(path=None, precision="int8", method=method, samples=len(samples),
                          size_before=model.ByteSize(), size_after=quantized.ByteSize(),
                          top1_agreement=found.top1_agreement, max_rel_error=found.max_rel_error, seconds=watch(),
                          model=quantized, int8_kernels=kernels, cosine_min=found.cosine_min,
                          cosine_mean=found.cosine_mean)


def _outputs(model: onnx.ModelProto, samples: np.ndarray) -> np.ndarray:
    """``model`` on ``samples``, the graph as written: at once, or in batches of its fixed size."""
    from ..runtime.execution import batched_outputs

    return batched_outputs(model, samples, optimization="disable")


def _block_nodes(model: onnx.ModelProto, names: Sequence[str], source: str) -> list[str]:
    """The node names of the blocks ``names`` in ``model`` (the pre-processed graph the quantizer reads)."""
    from ..graph.blocks import find_blocks

    blocks = {b.name: b for b in find_blocks(model, source)}
    unknown = [n for n in names if n not in blocks]
    if unknown:
        raise InputError(f"{source} has no block {', '.join(unknown)}; its blocks: {', '.join(blocks)}")
    return [node for n in names for node in blocks[n].nodes]


def quantize_file(
    model_path: str | Path,
    output: str | Path,
    calibration: str | Path | None,
    *,
    method: str = "minmax",
    per_channel: bool = True,
    target_cpu: str = "auto",
    max_samples: int | None = DEFAULT_MAX_SAMPLES,
    synthetic_samples: int = 16,
    progress: Callable[[str], None] | None = None,
    force: bool = True,
) -> QuantizeResult:
    """Quantize an ONNX file to INT8 for ``target_cpu`` (see :func:`quantize_model`) and save it
    atomically (with ``force=False`` never over an existing file, even one created while this ran).

    With 8 or more calibration samples, one in four is held out of the calibration and the file
    checked against fp32 on those, on this machine (``heldout``); an error over the tolerance is
    warned about in one line (``UserWarning``), the file is written all the same.
    Without ``calibration`` the model is calibrated on synthetic standard-normal inputs, which is
    fit for timing only: the result is labelled ``synthetic`` and its accuracy means nothing.
    """
    say = progress or (lambda _msg: None)
    watch = Stopwatch()
    output = check_writable(output)
    model, notes, spec = load_classifier(model_path)
    image = image_input(model, model_path)
    held = None
    if calibration is None:
        samples = np.random.default_rng(0).standard_normal((synthetic_samples, *image.batch_shape(1)[1:]),
                                                           dtype=np.float32)
    else:
        say(f"loading calibration data from {calibration}")
        samples, held = split_held_out(load_samples(calibration, image.shape, read_metadata(model),
                                                    max_samples=max_samples))
    say(f"calibrating on {len(samples)} samples ({method}) and quantizing"
        + (f" ({len(held)} more held out to check it)" if held is not None and len(held) else ""))
    recipe = replace(DEFAULT_RECIPE, per_channel=per_channel)
    made = quantize_model(model, samples, method=method, recipe=recipe, target_cpu=target_cpu, source=str(model_path))
    quantized = made.model
    heldout = check_held_out(quantized, model, held) if held is not None and len(held) else None
    if heldout is not None and not heldout.holds:
        # Made for VNNI on a CPU without: the kernels; else the calibration (a wrong scale, too few samples).
        hint = ("quantize with --target-cpu any" if (made.int8_kernels, int8_kernels()) == ("vnni", "any")
                else "check the calibration data")
        warnings.warn(f"{Path(output).name}: INT8 {heldout.describe()} on this CPU ({cpu_model()}, int8_kernels "
                      f"{int8_kernels()}; the file's: {made.int8_kernels}): its accuracy may not hold; {hint}, "
                      "and measure it with bench --eval-data", UserWarning, stacklevel=2)
    if calibration is None:
        write_metadata(quantized, {"calibration": "synthetic (timing only)"})
    if spec is not None:
        say("putting the float preprocessing back in front and verifying it on photos")
        quantized, report = image_input_stage(quantized, spec, source=f"{model_path} (INT8)")
        notes.append(f"image input: {report.note}")
    size = save_onnx(quantized, output, replace=force)
    return replace(made, path=Path(output), size_before=Path(model_path).stat().st_size, size_after=size,
                   seconds=watch(), synthetic=calibration is None, notes=notes, model=quantized, heldout=heldout)
