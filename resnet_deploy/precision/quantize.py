"""Lower precision: static INT8 (QDQ) with onnxruntime's quantization tools, and FP16.

INT8: ``quant_pre_process`` (shape inference and ORT's graph optimizations), then
``quantize_static`` in QDQ format with per-channel weight scales, calibrated on real inputs
(``minmax``, ``entropy`` or ``percentile``), uint8 activations and int8 weights. The result is checked against the fp32 model on
the calibration inputs: top-1 agreement and max relative error are reported, never hidden.

A file from ``optimize --target cpu/cuda`` is quantized from its standard-ONNX form (FusedConv
unfused and verified first, and said so); a model with a fixed batch is calibrated and checked in
batches of that size.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import onnx
from onnx import numpy_helper

from .._atomic import check_writable
from .._errors import InputError, OnnxModelError
from .calibration import DEFAULT_MAX_SAMPLES, fixed_batches, load_samples
from ..image_input import ImageInputSpec, classifier_and_spec
from ..export.image_input import image_input_stage
from ..graph.io import image_input, load_onnx, read_metadata, save_onnx, write_metadata
from ..export.optimize import portable_graph
from ..graph.passes.unfuse_fused_conv import is_standard
from ..export.pipeline import Stopwatch
from ..graph.fp16 import convert_fp16, is_quantized  # noqa: F401  (convert_fp16 re-exported)
from .recipes import CALIBRATION_METHODS, DEFAULT_RECIPE, RECIPES, QuantRecipe
from ..graph.verify import compare

__all__ = [
    "QuantizeResult", "QuantRecipe", "RECIPES", "DEFAULT_RECIPE", "quantize_file", "quantize_model", "convert_fp16",
    "CALIBRATION_METHODS", "is_quantized",
]

@dataclass
class QuantizeResult:
    path: Path | None
    precision: str
    method: str
    samples: int
    size_before: int
    size_after: int
    top1_agreement: float
    max_rel_error: float
    seconds: float
    model: onnx.ModelProto = field(repr=False, compare=False)  # the quantized graph (as saved, by quantize_file)
    synthetic: bool = False
    notes: list[str] = field(default_factory=list)  # what was done that the user did not ask for

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "model"}
        out["path"] = str(self.path) if self.path else None
        out["notes"] = list(self.notes)
        return out


_FLOAT_TYPES = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE, onnx.TensorProto.BFLOAT16)


def load_quantizable(model_path: str | Path) -> tuple[onnx.ModelProto, list[str]]:
    """The fp32 graph every quantization path starts from, checked, and a note when it is not the
    file as given: the FusedConv of ``optimize --target cpu/cuda`` unfused (and verified) first.
    A file with the preprocessing in its graph is refused: only :func:`quantize_file` puts it back."""
    model, notes, spec = _load_classifier(model_path)
    if spec is not None:
        raise OnnxModelError(f"{model_path} takes uint8 images (its preprocessing is in the graph); block-wise INT8 "
                             "(--sensitivity, --max-accuracy-drop) needs the float model; plain quantize keeps the image input")
    return model, notes


def _load_classifier(model_path: str | Path) -> tuple[onnx.ModelProto, list[str], ImageInputSpec | None]:
    """:func:`load_quantizable`'s graph, and the image input to put back on it when the file has one
    (the classifier is quantized; the preprocessing in front of it stays float)."""
    model, spec = classifier_and_spec(load_onnx(model_path), None, source=str(model_path))
    notes: list[str] = []
    if spec is not None:
        notes.append(f"{Path(model_path).name} takes uint8 images: its classifier was quantized and the preprocessing "
                     "put back in float")
    if not is_quantized(model):  # (a quantized file is refused by name below)
        model, unfused = portable_graph(model, str(model_path), advice="quantize a model in standard ONNX (resnet-deploy export)")
        if unfused is not None:
            notes.append(f"{Path(model_path).name} holds onnxruntime's FusedConv (from optimize --target cpu/cuda): quantized its "
                         f"portable graph instead ({unfused.details['unfused']} FusedConv unfused to Conv + Add + Relu, "
                         f"verified: max rel error {unfused.details['max_rel_error']:.2e})")
    _check_quantizable(model, str(model_path))
    return model, notes, spec


def _check_quantizable(model: onnx.ModelProto, source: str) -> None:
    if is_quantized(model):
        raise OnnxModelError(f"{source} is already quantized")
    if not all(is_standard(n) for n in model.graph.node):
        raise OnnxModelError(
            f"{source} holds onnxruntime-specific ops; quantize the portable model "
            "(resnet-deploy export, or optimize --target portable)"
        )
    image_input(model, source).batch_shape(1)  # one image input [N, C, H, W], only the batch dynamic
    for init in model.graph.initializer:  # a NaN weight ends in onnxruntime's bare "scale issue" assert
        if init.data_type in _FLOAT_TYPES and not np.all(np.isfinite(numpy_helper.to_array(init))):
            raise OnnxModelError(f"{source}: weight {init.name!r} holds NaN or Inf; INT8 scales need finite weights")


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
    source: str = "model",
    keep_float: Sequence[str] = (),
) -> QuantizeResult:
    """Static INT8 of ``model``: the result holds the quantized graph (``model``, not saved:
    ``path`` is None) and its top-1 agreement and max rel error against ``model`` on ``samples``.

    ``keep_float`` names blocks (``stem``, ``layer1.0``, ..., ``head``, as :mod:`.blocks` finds
    them) whose nodes onnxruntime's quantizer leaves in float (``nodes_to_exclude``).
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    watch = Stopwatch()
    if method not in CALIBRATION_METHODS:
        raise InputError(f"unknown calibration method {method!r}; expected one of {', '.join(CALIBRATION_METHODS)}")
    _check_quantizable(model, source)
    image = image_input(model, source)
    calibrate = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy, "percentile": CalibrationMethod.Percentile}[method]
    types = {"u8": QuantType.QUInt8, "s8": QuantType.QInt8}
    with tempfile.TemporaryDirectory(prefix="resnet-deploy-quant-") as tmp:
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
                nodes_to_exclude=excluded,
                extra_options={"CalibTensorRangeSymmetric": False, "CalibMovingAverage": False},
            )
        quantized = onnx.load(str(q_path))
    # Keep the fp32 model's metadata (preprocessing, labels) and record the precision.
    del quantized.metadata_props[:]
    quantized.metadata_props.extend(model.metadata_props)
    write_metadata(quantized, {"precision": "int8", "quantization": f"static {recipe.describe()}, {method} calibration"})
    if keep_float:
        write_metadata(quantized, {"float_blocks": ",".join(keep_float)})
    parity = compare(_outputs(quantized, samples), _outputs(model, samples), rtol=1.0)
    return QuantizeResult(path=None, precision="int8", method=method, samples=len(samples), size_before=model.ByteSize(),
                          size_after=quantized.ByteSize(), top1_agreement=parity.top1_agreement,
                          max_rel_error=parity.max_rel_error, seconds=watch(), model=quantized)


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
    max_samples: int | None = DEFAULT_MAX_SAMPLES,
    synthetic_samples: int = 16,
    progress: Callable[[str], None] | None = None,
    force: bool = True,
) -> QuantizeResult:
    """Quantize an ONNX file to INT8 and save it atomically (with ``force=False`` never over an
    existing file, even one created while this ran).

    Without ``calibration`` the model is calibrated on synthetic standard-normal inputs, which is
    fit for timing only: the result is labelled ``synthetic`` and its accuracy means nothing.
    """
    say = progress or (lambda _msg: None)
    watch = Stopwatch()
    output = check_writable(output)
    model, notes, spec = _load_classifier(model_path)
    image = image_input(model, model_path)
    shape = image.shape
    if calibration is None:
        samples = np.random.default_rng(0).standard_normal((synthetic_samples, *image.batch_shape(1)[1:]), dtype=np.float32)
    else:
        say(f"loading calibration data from {calibration}")
        samples = load_samples(calibration, shape, read_metadata(model), max_samples=max_samples)
    say(f"calibrating on {len(samples)} samples ({method}) and quantizing")
    recipe = replace(DEFAULT_RECIPE, per_channel=per_channel)
    made = quantize_model(model, samples, method=method, recipe=recipe, source=str(model_path))
    quantized = made.model
    if calibration is None:
        write_metadata(quantized, {"calibration": "synthetic (timing only)"})
    if spec is not None:
        say("putting the float preprocessing back in front and verifying it on photos")
        quantized, report = image_input_stage(quantized, spec, source=f"{model_path} (INT8)")
        notes.append(f"image input: {report.note}")
    size = save_onnx(quantized, output, replace=force)
    return replace(made, path=Path(output), size_before=Path(model_path).stat().st_size, size_after=size, seconds=watch(),
                   synthetic=calibration is None, notes=notes, model=quantized)
