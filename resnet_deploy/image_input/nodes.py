"""The nodes the image input adds: the preprocessing in front of the classifier, top-k after it.

Why two resizes with rounding: PIL resizes an 8-bit image in two passes, horizontal then
vertical, and rounds each pass back to 8 bits (``Resample.c``, ``ImagingResampleInner``). ONNX
``Resize`` (opset 18) with ``mode=linear`` and ``antialias=1`` uses the same triangle filter,
widened by the downscale factor, on pixel centres (``half_pixel``); doing one pass per axis and
rounding after each (``Floor(x + 0.5)``: PIL rounds half up) leaves only float32-vs-PIL's 22-bit
fixed-point weights to differ. A single 2-D resize without rounding differed by up to 0.98 grey
levels (issue 22).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..preprocess.images import Preprocessing
from .spec import IMAGE_INPUT_NAME, PREFIX, SCORES, TOP_K_INDICES, TOP_K_SCORES

__all__ = ["preprocessing_nodes", "top_k_nodes", "static_width"]


def static_width(value: onnx.ValueInfoProto) -> int | None:
    """The last dimension of ``value`` (the number of classes of logits), or None when it is not static."""
    dims = value.type.tensor_type.shape.dim
    return dims[-1].dim_value if dims and dims[-1].HasField("dim_value") and dims[-1].dim_value > 0 else None


class _Builder:
    """Nodes and initializers named ``image_input/<name>``."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []

    def const(self, name: str, value: Any, dtype: Any) -> str:
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), PREFIX + name))
        return PREFIX + name

    def op(self, op_type: str, name: str, inputs: Sequence[str], *, output: str | None = None, **attrs: Any) -> str:
        out = output or PREFIX + name
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=PREFIX + name, **attrs))
        return out


def preprocessing_nodes(pre: Preprocessing, output: str) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """From the uint8 ``image`` input to ``output``, the classifier's float input, as ``pre`` does in PIL."""
    b = _Builder()
    x = b.op("Cast", "to_float", [IMAGE_INPUT_NAME], to=TensorProto.FLOAT)
    x = b.op("Transpose", "to_nchw", [x], perm=[0, 3, 1, 2])
    new_h, new_w, batch = _resized_size(b, pre.resize_size)
    three = b.const("three", [3], np.int64)
    half = b.const("half", 0.5, np.float32)
    for axis, (h, w) in (("width", (PREFIX + "height", new_w)), ("height", (new_h, new_w))):
        sizes = b.op("Concat", f"{axis}_sizes", [batch, three, h, w], axis=0)
        x = b.op("Resize", f"resize_{axis}", [x, "", "", sizes], mode="linear", antialias=1, exclude_outside=1,
                 coordinate_transformation_mode="half_pixel")
        x = b.op("Floor", f"round_{axis}", [b.op("Add", f"round_{axis}_half", [x, half])])  # PIL rounds half up
    x = _centre_crop(b, x, new_h, new_w, pre.crop_size)
    if pre.channel_order.upper() == "BGR":
        x = b.op("Gather", "to_bgr", [x, b.const("bgr", [2, 1, 0], np.int64)], axis=1)
    mean = np.asarray(pre.mean, np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(pre.std, np.float32).reshape(1, 3, 1, 1)
    x = b.op("Div", "scale", [x, b.const("255", 255.0, np.float32)])
    x = b.op("Sub", "normalize_mean", [x, b.const("mean", mean, np.float32)])
    b.op("Div", "normalize_std", [x, b.const("std", std, np.float32)], output=output)
    return b.nodes, b.inits


def _resized_size(b: _Builder, resize: int) -> tuple[str, str, str]:
    """``Preprocessing.resized_size`` in int64: the shorter side becomes ``resize``, the longer
    ``resize * long // short`` (Python's ``int(resize * long / short)``: equal for positive sides,
    since a non-integer quotient of integers below 2**53 is never rounded up to the next integer)."""
    shape = b.op("Shape", "shape", [IMAGE_INPUT_NAME])
    starts = {name: b.const(f"axis_{name}", [i], np.int64)
              for i, name in enumerate(("batch", "height", "width", "channels"))}
    batch = b.op("Slice", "batch", [shape, starts["batch"], starts["height"]])
    h = b.op("Slice", "height", [shape, starts["height"], starts["width"]])
    w = b.op("Slice", "width", [shape, starts["width"], starts["channels"]])
    target = b.const("resize_size", [resize], np.int64)
    short = b.op("Min", "short_side", [h, w])
    long = b.op("Max", "long_side", [h, w])
    new_long = b.op("Div", "new_long_side", [b.op("Mul", "resize_times_long", [target, long]), short])
    portrait = b.op("LessOrEqual", "width_is_short", [w, h])
    new_h = b.op("Where", "new_height", [portrait, new_long, target])
    new_w = b.op("Where", "new_width", [portrait, target, new_long])
    return new_h, new_w, batch


def _centre_crop(b: _Builder, x: str, new_h: str, new_w: str, crop: int) -> str:
    """``top = round((new_h - crop) / 2)`` with Python's round (half to even, as ONNX Round)."""
    size = b.const("crop_size", [crop], np.int64)
    two = b.const("two", 2.0, np.float64)
    offsets = []
    for name, side in (("top", new_h), ("left", new_w)):
        margin = b.op("Cast", f"{name}_margin", [b.op("Sub", f"{name}_extra", [side, size])], to=TensorProto.DOUBLE)
        offset = b.op("Round", f"{name}_round", [b.op("Div", f"{name}_half", [margin, two])])
        offsets.append(b.op("Cast", f"{name}", [offset], to=TensorProto.INT64))
    starts = b.op("Concat", "crop_starts", offsets, axis=0)
    ends = b.op("Add", "crop_ends", [starts, size])
    return b.op("Slice", "crop", [x, starts, ends, b.const("crop_axes", [2, 3], np.int64)])


def top_k_nodes(
    logits: onnx.ValueInfoProto, k: int, batch_dim: onnx.TensorShapeProto.Dimension
) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto], list[onnx.ValueInfoProto]]:
    """Softmax ``scores`` of ``logits`` and their ``k`` largest, with the outputs that declare them."""
    b = _Builder()
    scores = b.op("Softmax", "softmax", [logits.name], output=SCORES, axis=-1)
    b.nodes.append(helper.make_node("TopK", [scores, b.const("k", [k], np.int64)], [TOP_K_SCORES, TOP_K_INDICES],
                                    name=PREFIX + "top_k", axis=-1, largest=1, sorted=1))
    # scores has the logits' shape: a server checks declared output dims (Triton: [classes], not [-1]).
    outputs = [helper.make_tensor_value_info(SCORES, TensorProto.FLOAT, [None, static_width(logits)]),
               helper.make_tensor_value_info(TOP_K_SCORES, TensorProto.FLOAT, [None, k]),
               helper.make_tensor_value_info(TOP_K_INDICES, TensorProto.INT64, [None, k])]
    for value in outputs:
        value.type.tensor_type.shape.dim[0].CopyFrom(batch_dim)
    return b.nodes, b.inits, outputs
