"""The float classifier taken back out of an image-input model, for the transformations that
work on it (quantize and fp16 transform the classifier only and prepend the same preprocessing
again: it stays float)."""

from __future__ import annotations

from typing import Any, Callable

import onnx
from onnx import numpy_helper

from .._errors import OnnxModelError
from ..graph.io import read_metadata, write_metadata
from ..preprocess.images import Preprocessing
from .spec import (
    IMAGE_INPUT_NAME, LAST_NODE, PREFIX, SCORES, TOP_K_INDICES, TOP_K_SCORES, ImageInputRequest, ImageInputSpec,
    is_image_input, preprocessing_for,
)

__all__ = ["split_image_input", "classifier_and_spec"]


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
    return model, ImageInputSpec(preprocessing_for(model, mean=request.mean, std=request.std, source=source),
                                 request.top_k)


def split_image_input(model: onnx.ModelProto, *, source: str = "model") -> tuple[onnx.ModelProto, ImageInputSpec]:
    """The float classifier inside an image-input model, and the spec that rebuilds the rest:
    ``add_image_input(*split_image_input(m))`` makes the same graph again."""
    if not is_image_input(model):
        raise OnnxModelError(f"{source} does not take uint8 images; it has no preprocessing to split off")
    last = next(n for n in model.graph.node if n.name == LAST_NODE)
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
    pre = Preprocessing.from_metadata(read_metadata(model, source),
                                      (dims[2].dim_value or None, dims[3].dim_value or None),
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
