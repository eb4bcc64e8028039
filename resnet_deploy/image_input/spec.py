"""What an image input is: its names, the spec that describes it, and how to recognise one.

Every node and initializer the image input adds is named ``image_input/...`` (:data:`PREFIX`),
and the outputs it may add are :data:`SCORES`, :data:`TOP_K_SCORES` and :data:`TOP_K_INDICES`:
:func:`~.split.split_image_input` finds them by these names to take the classifier back out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import onnx

from .._errors import OnnxModelError
from ..graph.io import image_input, read_metadata
from ..preprocess.images import Preprocessing

__all__ = [
    "IMAGE_INPUT_FORMAT", "IMAGE_INPUT_NAME", "IMAGE_INPUT_OPSET", "PREFIX", "SCORES", "TOP_K_SCORES", "TOP_K_INDICES",
    "LAST_NODE", "ImageInputSpec", "ImageInputRequest", "is_image_input", "preprocessing_for",
]

IMAGE_INPUT_FORMAT = "uint8 RGB NHWC, any size"
IMAGE_INPUT_NAME = "image"
IMAGE_INPUT_OPSET = 18  # Resize's antialias attribute
PREFIX = "image_input/"
SCORES, TOP_K_SCORES, TOP_K_INDICES = "scores", "top_k_scores", "top_k_indices"
LAST_NODE = PREFIX + "normalize_std"  # its output is the original model's input


@dataclass(frozen=True)
class ImageInputSpec:
    """What :func:`~.build.add_image_input` prepends: the preprocessing, and how many top classes
    the graph returns besides the logits (0: logits only; k: also ``scores``, ``top_k_scores`` and
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


def is_image_input(model: onnx.ModelProto) -> bool:
    """Whether ``model`` takes uint8 images with the preprocessing inside (made by :func:`~.build.add_image_input`)."""
    return any(n.name == LAST_NODE for n in model.graph.node)


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
    values = {**read_metadata(model, source),
              **{k: list(v) for k, v in (("mean", mean), ("std", std)) if v is not None}}
    missing = [k for k in ("mean", "std") if k not in values]
    if missing:  # ImageNet's defaults would be a guess baked into the file: ask
        raise OnnxModelError(f"{source} names no {' or '.join(missing)} in its metadata; give "
                             f"{' and '.join('--' + k for k in missing)} "
                             "(ImageNet's: --mean 0.485,0.456,0.406 --std 0.229,0.224,0.225)")
    return Preprocessing.from_metadata(values, (image.shape[2], image.shape[3]), source=source)
