"""What the workers are fed: the model file's input and the fixed input batch (the evaluation
data's loader lives with the calibration loader, in :mod:`resnet_deploy.precision.calibration`).

Torch-free: a benchmark of ONNX files needs onnx and numpy only.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from .._errors import InputError, OnnxModelError
from ..precision.calibration import output_classes
from ..image_input import is_image_input
from ..graph.io import image_input, load_onnx, read_metadata
from ..graph.verify import fixed_inputs
from ..runtime.model_info import int8_kernels_warning

__all__ = ["ModelFile", "read_model_file", "write_input", "benchmark_photo"]

_INT8_OPS = {"QuantizeLinear", "DequantizeLinear", "QLinearConv", "ConvInteger", "MatMulInteger"}


@dataclass(frozen=True)
class ModelFile:
    """An ONNX file as the benchmark sees it."""

    path: Path
    input_name: str
    shape: tuple[int | None, ...]  # None where the dimension is symbolic
    dtype: str
    precision: str  # "int8" (quantized ops), "fp16" (fp16 initializers) or "fp32"
    metadata: dict[str, Any]
    classes: int | None = None  # the logits' second dimension, when the graph states it
    takes_images: bool = False  # --image-input: uint8 RGB [N, H, W, 3] of any size, fed the benchmark photo

    @property
    def static_batch(self) -> int | None:
        return self.shape[0]

    def check_batch(self, batch: int) -> None:
        if self.static_batch is not None and self.static_batch != batch:
            raise InputError(
                f"{self.path.name} has a static batch of {self.static_batch}; batch size {batch} was asked for "
                f"(use --batch-size {self.static_batch})"
            )


def read_model_file(path: str | Path) -> ModelFile:
    """Validate an ONNX file (``onnx.checker`` first, as every command does) and read its image
    input; warn in one line, as Predictor does, when its INT8 needs kernels this CPU lacks."""
    path = Path(path)
    model = load_onnx(path)
    image = image_input(model, path.name)
    takes_images = is_image_input(model)
    if takes_images:  # any size: measured on one photo of a fixed size, decoded (decoding is not timed)
        image = replace(image, shape=(image.shape[0], *benchmark_photo().shape), dtype=np.dtype(np.uint8))
    image.batch_shape(1)  # refuses symbolic dimensions other than the batch
    if not takes_images and image.dtype not in (np.float32, np.float16):
        raise OnnxModelError(f"{path.name}: input {image.name!r} is {image.dtype}; "
                             "the benchmark feeds float32 or float16")
    ops = {n.op_type for n in model.graph.node}
    if ops & _INT8_OPS:
        precision = "int8"
    elif any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer):
        precision = "fp16"
    else:
        precision = "fp32"
    metadata = read_metadata(model)
    kernels = int8_kernels_warning(metadata, path.name)
    if kernels is not None:
        warnings.warn(kernels, UserWarning, stacklevel=2)
    return ModelFile(path, image.name, image.shape, str(image.dtype), precision, metadata,
                     output_classes(model), takes_images)


def benchmark_photo() -> np.ndarray:
    """What an image-input file is fed: the shipped portrait, 512x600 pixels, decoded to uint8 RGB [600, 512, 3]."""
    from ..preprocess.images import load_image
    from ..preprocess.labels import sample_image_path

    return np.asarray(load_image(sample_image_path()).convert("RGB"), dtype=np.uint8)


def write_input(shape: tuple[int, ...], dtype: str, path: Path) -> Path:
    """The fixed input every engine of one batch size runs on (seeded, standard normal; for an
    image-input file, uint8, the benchmark photo repeated over the batch)."""
    if dtype == "uint8":
        np.save(path, np.ascontiguousarray(np.broadcast_to(benchmark_photo(), shape)))
        return path
    np.save(path, fixed_inputs(shape, seed=42).astype(dtype))
    return path
