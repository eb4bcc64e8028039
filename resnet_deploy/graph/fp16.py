"""Which numeric precision a graph holds, and FP16 conversion for GPU providers.

Its own module so that ``optimize`` (``--precision fp16``) and ``quantize`` (which refuses an
already quantized graph) both use it without importing each other.
"""

from __future__ import annotations

import onnx

from .._errors import OnnxModelError
from .io import check_onnx, op_counts, write_metadata
from .passes._graph import topological_sort

__all__ = ["is_quantized", "convert_fp16", "QUANT_OPS"]

QUANT_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "QLinearConv", "ConvInteger",
                       "MatMulInteger", "QLinearMatMul"})


def is_quantized(model: onnx.ModelProto) -> bool:
    """True when the graph holds quantization ops (QDQ pairs or integer kernels)."""
    return bool(QUANT_OPS & set(op_counts(model)))


def convert_fp16(model: onnx.ModelProto, *, keep_io_types: bool = True) -> tuple[onnx.ModelProto, list[str]]:
    """FP16 weights and activations for GPU providers (onnxruntime's float16 converter).

    Inputs and outputs stay float32 unless ``keep_io_types`` is False. Returns the model and the
    op types that stay in float32 (the converter's default block list, where present).
    """
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    if is_quantized(model):
        raise OnnxModelError("the model is already quantized; convert the fp32 model to fp16")
    converted = convert_float_to_float16(model, keep_io_types=keep_io_types, disable_shape_infer=False)
    topological_sort(converted.graph)  # the converter appends its input casts at the end
    check_onnx(converted, "fp16 conversion")
    write_metadata(converted, {"precision": "fp16"})
    kept = sorted(set(DEFAULT_OP_BLOCK_LIST) & set(op_counts(model)))
    return converted, kept
