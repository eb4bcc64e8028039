"""What an export is asked for (:class:`ExportOptions`), its checks before any work, and the
preprocessing it records."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import onnx

from .._errors import ExportError
from .._registry import get_model_spec
from ..graph.io import DEFAULT_OPSET, MIN_OPSET
from ..graph.verify import DEFAULT_RTOL
from ..preprocess.images import Preprocessing

__all__ = ["ExportOptions", "validate", "export_preprocessing", "MAX_CLASSES"]

MAX_CLASSES = 100_000  # ImageNet-21k has 21,841; a ResNet-50 head of 100,000 classes is 0.8 GB


@dataclass
class ExportOptions:
    """What to export and how. ``name`` is a registered model name (see ``list_models()``)."""

    name: str
    num_classes: int | None = None
    weights: str | Path | None = None
    image_size: int | None = None
    opset: int = DEFAULT_OPSET
    static_batch: int | None = None
    labels: Sequence[str] | None = None
    rtol: float = DEFAULT_RTOL
    # The preprocessing inside the graph (uint8 RGB [N, H, W, 3] of any size in), verified on photos;
    # image_input_top_k > 0 also adds softmax scores and the top-k classes as outputs.
    image_input: bool = False
    image_input_top_k: int = 0
    # Embeddings instead of classes: the pooled features (fc = Identity), unit length with normalize.
    features: bool = False
    normalize: bool = False


def validate(options: ExportOptions) -> None:
    if not MIN_OPSET <= options.opset <= onnx.defs.onnx_opset_version():
        raise ExportError(
            f"opset {options.opset} is not supported; choose {MIN_OPSET} to {onnx.defs.onnx_opset_version()}"
        )
    if options.static_batch is not None and options.static_batch < 1:
        raise ExportError(f"--static-batch must be at least 1, received {options.static_batch}")
    if options.image_size is not None and not 16 <= options.image_size <= 4096:
        raise ExportError(f"--image-size must be between 16 and 4096, received {options.image_size}")
    if options.image_input_top_k and not options.image_input:
        raise ExportError("the in-graph top-k needs the image input (--image-input)")
    if options.normalize and not options.features:
        raise ExportError("--normalize applies to embeddings: add --features")
    if options.features and options.image_input_top_k:
        raise ExportError("a features file has no classes to rank: drop --image-input-top-k")
    if options.features and options.labels is not None:
        raise ExportError("a features file has no classes to name: drop --labels")
    if options.num_classes is not None and not 1 <= options.num_classes <= MAX_CLASSES:
        # --num-classes 10**12 asked torch for a 256 TB classifier and died in its allocator.
        raise ExportError(f"--num-classes must be between 1 and {MAX_CLASSES:,}, received {options.num_classes}")


def export_preprocessing(options: ExportOptions) -> Preprocessing:
    """The preprocessing an export records (and calibration data is read with): the zoo's resize
    ratio, crop, mean and std at the export's image size."""
    spec = get_model_spec(options.name)
    image_size = options.image_size or spec.image_size
    return Preprocessing(resize_size=round(image_size * spec.resize_size / spec.image_size), crop_size=image_size,
                         mean=spec.mean, std=spec.std)
