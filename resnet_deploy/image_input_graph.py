"""Preprocessing inside the graph: a classifier that takes uint8 RGB images of any size.

:func:`add_image_input` prepends to a classifier's ONNX graph the steps that
:class:`~resnet_deploy.preprocess.Preprocessing` does in PIL, so that an application in any
language onnxruntime runs in (C++, C#, Java, JavaScript, phones) feeds decoded pixels as they
are and gets the answer Python gets:

    image uint8 [N, H, W, 3] -> Cast float -> Transpose NCHW
      -> Resize the width, round   \\  the shorter side to ``resize_size``, the longer truncated
      -> Resize the height, round  /  (``Preprocessing.resized_size``), antialiased bilinear
      -> Slice the centre ``crop_size`` square (offsets rounded half to even, as Python's round)
      -> / 255 -> - mean -> / std  -> the original model -> logits [, scores, top-k]

Why two resizes with rounding: PIL resizes an 8-bit image in two passes, horizontal then
vertical, and rounds each pass back to 8 bits (``Resample.c``, ``ImagingResampleInner``). ONNX
``Resize`` (opset 18) with ``mode=linear`` and ``antialias=1`` uses the same triangle filter,
widened by the downscale factor, on pixel centres (``half_pixel``); doing one pass per axis and
rounding after each (``Floor(x + 0.5)``: PIL rounds half up) leaves only float32-vs-PIL's 22-bit
fixed-point weights to differ. A single 2-D resize without rounding differed by up to 0.98 grey
levels (issue 22).

Every node and initializer added here is named ``image_input/...``; the original model's input
tensor keeps its name, and its description is kept in the graph's ``value_info``, so
:func:`split_image_input` can take the float classifier back out (quantize and fp16 transform the
classifier only and prepend the same preprocessing again: it stays float).

Images of one batch share one size. H and W must be at least 1; a 0-pixel side divides by zero
in the size arithmetic: callers refuse it first, as :class:`~resnet_deploy.runtime.Predictor` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ._errors import OnnxModelError
from .onnx_io import image_input, read_metadata, write_metadata
from .preprocess import Preprocessing, imagenet_labels

__all__ = [
    "IMAGE_INPUT_FORMAT",
    "IMAGE_INPUT_NAME",
    "IMAGE_INPUT_OPSET",
    "ImageInputSpec",
    "ImageInputRequest",
    "classifier_and_spec",
    "add_image_input",
    "split_image_input",
    "is_image_input",
    "preprocessing_for",
]

IMAGE_INPUT_FORMAT = "uint8 RGB NHWC, any size"
IMAGE_INPUT_NAME = "image"
IMAGE_INPUT_OPSET = 18  # Resize's antialias attribute
PREFIX = "image_input/"
SCORES, TOP_K_SCORES, TOP_K_INDICES = "scores", "top_k_scores", "top_k_indices"
_LAST_NODE = PREFIX + "normalize_std"  # its output is the original model's input


@dataclass(frozen=True)
class ImageInputSpec:
    """What :func:`add_image_input` prepends: the preprocessing, and how many top classes the
    graph returns besides the logits (0: logits only; k: also ``scores``, ``top_k_scores`` and
    ``top_k_indices``)."""

    preprocessing: Preprocessing
    top_k: int = 0


@dataclass(frozen=True)
class ImageInputRequest:
    """What a command asks for: the image input, with ``mean``/``std`` for a file whose metadata
    has none (or to override it), and ``top_k`` classes computed in the graph (0: none)."""

    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    top_k: int = 0


def classifier_and_spec(
    model: onnx.ModelProto, request: ImageInputRequest | None, *, source: str = "model"
) -> tuple[onnx.ModelProto, ImageInputSpec | None]:
    """The float classifier a transformation works on, and the image input to put back on it
    afterwards: the file's own (split off) when it has one, else what ``request`` asks for."""
    if is_image_input(model):
        if request is not None:
            raise OnnxModelError(f"{source} already takes uint8 images (its preprocessing is in the graph); "
                                 "drop --image-input, or give the float model")
        return split_image_input(model, source=source)
    if request is None:
        return model, None
    if request.top_k < 0:
        raise OnnxModelError(f"top-k must be 0 (none) or more, received {request.top_k}")
    return model, ImageInputSpec(preprocessing_for(model, mean=request.mean, std=request.std, source=source), request.top_k)


def is_image_input(model: onnx.ModelProto) -> bool:
    """Whether ``model`` takes uint8 images with the preprocessing inside (made by :func:`add_image_input`)."""
    return any(n.name == _LAST_NODE for n in model.graph.node)


def preprocessing_for(
    model: onnx.ModelProto,
    *,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    source: str = "model",
) -> Preprocessing:
    """The preprocessing to put inside ``model``: its metadata's, with ``mean``/``std`` given
    here taking precedence (a file exported elsewhere has none)."""
    image = image_input(model, source)
    values = {**read_metadata(model, source), **{k: list(v) for k, v in (("mean", mean), ("std", std)) if v is not None}}
    missing = [k for k in ("mean", "std") if k not in values]
    if missing:  # ImageNet's defaults would be a guess baked into the file: ask
        raise OnnxModelError(f"{source} names no {' or '.join(missing)} in its metadata; give "
                             f"{' and '.join('--' + k for k in missing)} (ImageNet's: --mean 0.485,0.456,0.406 --std 0.229,0.224,0.225)")
    return Preprocessing.from_metadata(values, (image.shape[2], image.shape[3]), source=source)


def add_image_input(
    model: onnx.ModelProto, spec: ImageInputSpec, *, source: str = "model"
) -> onnx.ModelProto:
    """A copy of ``model`` (float ``[N, 3, crop, crop]`` in, logits out) that takes uint8 RGB
    ``[N, H, W, 3]`` images of any size, preprocessing them as ``spec.preprocessing`` does in PIL."""
    core = _check_core(model, spec, source)
    pre = spec.preprocessing
    graph = core.graph
    original_input = next(i for i in graph.input if i.name == image_input(core, source).name)
    batch_dim = original_input.type.tensor_type.shape.dim[0]
    nodes, inits = _preprocessing_nodes(pre, original_input.name)
    head: list[onnx.NodeProto] = []
    outputs = list(graph.output)
    if spec.top_k:
        head, head_inits, head_outputs = _top_k_nodes(graph.output[0], spec.top_k, batch_dim)
        inits += head_inits
        outputs += head_outputs
    image = helper.make_tensor_value_info(IMAGE_INPUT_NAME, TensorProto.UINT8, [None, "height", "width", 3])
    image.type.tensor_type.shape.dim[0].CopyFrom(batch_dim)
    out = onnx.ModelProto()
    out.CopyFrom(core)
    del out.graph.node[:], out.graph.input[:], out.graph.output[:]
    out.graph.node.extend([*nodes, *core.graph.node, *head])
    out.graph.input.append(image)
    out.graph.input.extend(i for i in core.graph.input if i.name != original_input.name)  # initializers listed as inputs
    out.graph.output.extend(outputs)
    out.graph.initializer.extend(inits)
    out.graph.value_info.append(original_input)  # the float classifier's input, for split_image_input
    write_metadata(out, {**pre.to_metadata(), "layout": "NHWC", "input_format": IMAGE_INPUT_FORMAT,
                         "preprocessing": "in the graph (uint8 RGB in)", "image_input_top_k": spec.top_k})
    if "labels" not in read_metadata(core, source) and _static_width(core.graph.output[0]) == 1000:
        # Predictor names a 1000-class model's outputs with ImageNet's classes; an app in another
        # language has only the file, so the file carries them (about 10 kB).
        write_metadata(out, {"labels": imagenet_labels()})
    return out


def _check_core(model: onnx.ModelProto, spec: ImageInputSpec, source: str) -> onnx.ModelProto:
    """The classifier as it is, or a refusal naming what cannot take an image input."""
    if is_image_input(model):
        raise OnnxModelError(f"{source} already takes uint8 images (its preprocessing is in the graph)")
    image = image_input(model, source)
    if image.dtype != np.float32:
        raise OnnxModelError(f"{source}: input {image.name!r} is {image.dtype}; the preprocessing feeds float32")
    crop = spec.preprocessing.crop_size
    if image.shape[1:] != (3, crop, crop):
        raise OnnxModelError(f"{source}: input {image.name!r} is {image.describe()}; the preprocessing makes [N, 3, {crop}, {crop}]")
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < IMAGE_INPUT_OPSET:
        raise OnnxModelError(f"{source} is opset {opset}; the image input needs opset {IMAGE_INPUT_OPSET} or newer "
                             "(Resize with antialias): re-export it with --opset 18")
    names = {t for n in model.graph.node for t in (*n.input, *n.output)} | {i.name for i in model.graph.initializer}
    taken = sorted(t for t in names | {o.name for o in model.graph.output} if t == IMAGE_INPUT_NAME or t.startswith(PREFIX)
                   or t in (SCORES, TOP_K_SCORES, TOP_K_INDICES))
    if taken:
        raise OnnxModelError(f"{source} already uses the tensor names {', '.join(taken)}, which the image input adds")
    if len(model.graph.output) < 1:
        raise OnnxModelError(f"{source} has no output")
    if spec.top_k:
        width = _static_width(model.graph.output[0])
        if width is None or not 1 <= spec.top_k <= width:
            raise OnnxModelError(f"{source}: top-k {spec.top_k} needs a static number of classes of at least {spec.top_k} "
                                 f"in output {model.graph.output[0].name!r} (it has {width or 'a dynamic number'})")
    return model


def _static_width(value: onnx.ValueInfoProto) -> int | None:
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


def _preprocessing_nodes(pre: Preprocessing, output: str) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
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
    starts = {name: b.const(f"axis_{name}", [i], np.int64) for i, name in enumerate(("batch", "height", "width", "channels"))}
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


def _top_k_nodes(
    logits: onnx.ValueInfoProto, k: int, batch_dim: onnx.TensorShapeProto.Dimension
) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto], list[onnx.ValueInfoProto]]:
    b = _Builder()
    scores = b.op("Softmax", "softmax", [logits.name], output=SCORES, axis=-1)
    b.nodes.append(helper.make_node("TopK", [scores, b.const("k", [k], np.int64)], [TOP_K_SCORES, TOP_K_INDICES],
                                    name=PREFIX + "top_k", axis=-1, largest=1, sorted=1))
    # scores has the logits' shape: a server checks declared output dims (Triton: [classes], not [-1]).
    outputs = [helper.make_tensor_value_info(SCORES, TensorProto.FLOAT, [None, _static_width(logits)]),
               helper.make_tensor_value_info(TOP_K_SCORES, TensorProto.FLOAT, [None, k]),
               helper.make_tensor_value_info(TOP_K_INDICES, TensorProto.INT64, [None, k])]
    for value in outputs:
        value.type.tensor_type.shape.dim[0].CopyFrom(batch_dim)
    return b.nodes, b.inits, outputs


def split_image_input(model: onnx.ModelProto, *, source: str = "model") -> tuple[onnx.ModelProto, ImageInputSpec]:
    """The float classifier inside an image-input model, and the spec that rebuilds the rest:
    ``add_image_input(*split_image_input(m))`` makes the same graph again."""
    if not is_image_input(model):
        raise OnnxModelError(f"{source} does not take uint8 images; it has no preprocessing to split off")
    last = next(n for n in model.graph.node if n.name == _LAST_NODE)
    original = next((v for v in model.graph.value_info if v.name == last.output[0]), None)
    if original is None:
        raise OnnxModelError(f"{source}: the description of the classifier's input {last.output[0]!r} is missing")
    k = next((int(numpy_helper.to_array(i)[0]) for i in model.graph.initializer if i.name == PREFIX + "k"), 0)
    core = onnx.ModelProto()
    core.CopyFrom(model)
    graph = core.graph
    _keep(graph.node, lambda n: not n.name.startswith(PREFIX))
    _keep(graph.input, lambda i: i.name != IMAGE_INPUT_NAME)
    graph.input.insert(0, original)
    _keep(graph.output, lambda o: o.name not in (SCORES, TOP_K_SCORES, TOP_K_INDICES))
    _keep(graph.initializer, lambda i: not i.name.startswith(PREFIX))
    _keep(graph.value_info, lambda v: v.name != original.name and not v.name.startswith(PREFIX))
    dims = original.type.tensor_type.shape.dim
    pre = Preprocessing.from_metadata(read_metadata(model, source), (dims[2].dim_value or None, dims[3].dim_value or None),
                                      source=source)
    _restore_metadata(core)
    return core, ImageInputSpec(pre, k)


def _keep(field: Any, keep: Callable[[Any], bool]) -> None:
    """Keep the entries of a repeated protobuf field for which ``keep`` is true, in order."""
    kept = [entry for entry in field if keep(entry)]
    del field[:]
    field.extend(kept)


def _restore_metadata(core: onnx.ModelProto) -> None:
    """The float classifier's metadata: what add_image_input added, taken out again."""
    kept = [p for p in core.metadata_props if p.key not in ("input_format", "preprocessing", "image_input_top_k")]
    del core.metadata_props[:]
    core.metadata_props.extend(kept)
    write_metadata(core, {"layout": "NCHW"})
