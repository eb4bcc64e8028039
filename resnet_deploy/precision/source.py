"""The fp32 graph every INT8 path starts from, checked: standard ONNX (the FusedConv of ``optimize
--target cpu/cuda`` unfused and verified first, and said so), one image input, finite weights; a
file with the preprocessing in its graph gives its float classifier, the preprocessing put back
after the quantization."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from .._errors import OnnxModelError
from ..export.optimize import portable_graph
from ..graph.fp16 import is_quantized
from ..graph.io import image_input, load_onnx
from ..graph.passes.unfuse_fused_conv import is_standard
from ..image_input import ImageInputSpec, classifier_and_spec

__all__ = ["load_quantizable", "load_classifier", "check_quantizable"]


_FLOAT_TYPES = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE, onnx.TensorProto.BFLOAT16)


def load_quantizable(model_path: str | Path) -> tuple[onnx.ModelProto, list[str]]:
    """The fp32 graph every quantization path starts from, checked, and a note when it is not the
    file as given: the FusedConv of ``optimize --target cpu/cuda`` unfused (and verified) first.
    A file with the preprocessing in its graph is refused: only :func:`~.quantize.quantize_file` puts it back."""
    model, notes, spec = load_classifier(model_path)
    if spec is not None:
        raise OnnxModelError(f"{model_path} takes uint8 images (its preprocessing is in the graph); block-wise INT8 "
                             "(--sensitivity, --max-accuracy-drop) needs the float model; "
                             "plain quantize keeps the image input")
    return model, notes


def load_classifier(model_path: str | Path) -> tuple[onnx.ModelProto, list[str], ImageInputSpec | None]:
    """:func:`load_quantizable`'s graph, and the image input to put back on it when the file has one
    (the classifier is quantized; the preprocessing in front of it stays float)."""
    model, spec = classifier_and_spec(load_onnx(model_path), None, source=str(model_path))
    notes: list[str] = []
    if spec is not None:
        notes.append(f"{Path(model_path).name} takes uint8 images: its classifier was quantized and the preprocessing "
                     "put back in float")
    if not is_quantized(model):  # (a quantized file is refused by name below)
        model, unfused = portable_graph(model, str(model_path),
                                        advice="quantize a model in standard ONNX (resnet-deploy export)")
        if unfused is not None:
            notes.append(f"{Path(model_path).name} holds onnxruntime's FusedConv (from optimize --target cpu/cuda): "
                         f"quantized its portable graph instead ({unfused.details['unfused']} FusedConv unfused to "
                         f"Conv + Add + Relu, verified: max rel error {unfused.details['max_rel_error']:.2e})")
    check_quantizable(model, str(model_path))
    return model, notes, spec


def check_quantizable(model: onnx.ModelProto, source: str) -> None:
    """Refuse what onnxruntime's quantizer would fail on, or quantize wrongly, naming ``source``."""
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
