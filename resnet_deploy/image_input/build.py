"""The image input put on a classifier: :func:`add_image_input`, and what it refuses."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper

from .._errors import OnnxModelError
from ..graph.io import image_input, read_metadata, write_metadata
from ..preprocess.labels import imagenet_labels
from .nodes import preprocessing_nodes, static_width, top_k_nodes
from .spec import (
    IMAGE_INPUT_FORMAT, IMAGE_INPUT_NAME, IMAGE_INPUT_OPSET, PREFIX, SCORES, TOP_K_INDICES, TOP_K_SCORES,
    ImageInputSpec, is_image_input,
)

__all__ = ["add_image_input"]


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
    nodes, inits = preprocessing_nodes(pre, original_input.name)
    head: list[onnx.NodeProto] = []
    outputs = list(graph.output)
    if spec.top_k:
        head, head_inits, head_outputs = top_k_nodes(graph.output[0], spec.top_k, batch_dim)
        inits += head_inits
        outputs += head_outputs
    image = helper.make_tensor_value_info(IMAGE_INPUT_NAME, TensorProto.UINT8, [None, "height", "width", 3])
    image.type.tensor_type.shape.dim[0].CopyFrom(batch_dim)
    out = onnx.ModelProto()
    out.CopyFrom(core)
    del out.graph.node[:], out.graph.input[:], out.graph.output[:]
    out.graph.node.extend([*nodes, *core.graph.node, *head])
    out.graph.input.append(image)
    # the initializers listed as inputs
    out.graph.input.extend(i for i in core.graph.input if i.name != original_input.name)
    out.graph.output.extend(outputs)
    out.graph.initializer.extend(inits)
    out.graph.value_info.append(original_input)  # the float classifier's input, for split_image_input
    write_metadata(out, {**pre.to_metadata(), "layout": "NHWC", "input_format": IMAGE_INPUT_FORMAT,
                         "preprocessing": "in the graph (uint8 RGB in)", "image_input_top_k": spec.top_k})
    if "labels" not in read_metadata(core, source) and static_width(core.graph.output[0]) == 1000:
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
        raise OnnxModelError(f"{source}: input {image.name!r} is {image.describe()}; "
                             f"the preprocessing makes [N, 3, {crop}, {crop}]")
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < IMAGE_INPUT_OPSET:
        raise OnnxModelError(f"{source} is opset {opset}; the image input needs opset {IMAGE_INPUT_OPSET} or newer "
                             "(Resize with antialias): re-export it with --opset 18")
    names = {t for n in model.graph.node for t in (*n.input, *n.output)} | {i.name for i in model.graph.initializer}
    taken = sorted(t for t in names | {o.name for o in model.graph.output}
                   if t == IMAGE_INPUT_NAME or t.startswith(PREFIX) or t in (SCORES, TOP_K_SCORES, TOP_K_INDICES))
    if taken:
        raise OnnxModelError(f"{source} already uses the tensor names {', '.join(taken)}, which the image input adds")
    if len(model.graph.output) < 1:
        raise OnnxModelError(f"{source} has no output")
    if spec.top_k:
        width = static_width(model.graph.output[0])
        if width is None or not 1 <= spec.top_k <= width:
            raise OnnxModelError(f"{source}: top-k {spec.top_k} needs a static number of classes "
                                 f"of at least {spec.top_k} in output {model.graph.output[0].name!r} "
                                 f"(it has {width or 'a dynamic number'})")
    return model
