"""The model files engines run, made from one fp32 portable graph: the one builder that bench
(for a model of the zoo, after its export) and tune (for the file it is given) share.

The artifact vocabulary of :data:`.catalogue.CATALOGUE`:

- ``portable``: the fp32 file in standard ONNX (the export, or the file tune is given);
- ``export``: the raw ``torch.onnx`` export; ``cpu``/``cuda``: optimized for that provider
  (bench only: :mod:`.artifacts`, which needs torch);
- ``int8``: static INT8 QDQ (:func:`int8_model`); ``int8_static``: the same with a static batch
  (:func:`with_static_batch`); ``fp16``: float16 for GPU providers (:func:`fp16_model`).

Nothing here imports torch: tune runs without it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

from ..precision.calibration import DEFAULT_MAX_SAMPLES, load_samples
from ..graph.io import read_metadata
from ..graph.fp16 import convert_fp16
from ..graph.verify import fixed_inputs

__all__ = ["ARTIFACTS", "SYNTHETIC_SAMPLES", "calibration_samples", "int8_model", "fp16_model", "with_static_batch"]

ARTIFACTS = ("export", "portable", "cpu", "cuda", "int8", "int8_static", "fp16")
SYNTHETIC_SAMPLES = 16  # standard-normal calibration inputs: fit for timing only


def calibration_samples(model: onnx.ModelProto, calibration: str | Path | None,
                        image_shape: tuple[int, ...]) -> np.ndarray:
    """INT8 calibration inputs of ``[C, H, W]`` ``image_shape``: loaded from ``calibration`` (a
    folder of images preprocessed by ``model``'s metadata, or an ``.npy``), or without it
    :data:`SYNTHETIC_SAMPLES` seeded standard-normal ones (timing only: records and verdicts of
    INT8 calibrated on them say so)."""
    if calibration is None:
        return fixed_inputs((SYNTHETIC_SAMPLES, *image_shape), seed=123)
    return load_samples(calibration, (None, *image_shape), read_metadata(model), max_samples=DEFAULT_MAX_SAMPLES)


def int8_model(model: onnx.ModelProto, samples: np.ndarray, *, source: str,
               target_cpu: str = "auto") -> onnx.ModelProto:
    """Static INT8 QDQ (the default recipe) calibrated on ``samples``, for ``target_cpu`` (this
    machine's class by default)."""
    from ..precision.quantize import quantize_model  # onnxruntime's quantization tools

    return quantize_model(model, samples, source=source, target_cpu=target_cpu).model


def fp16_model(model: onnx.ModelProto) -> onnx.ModelProto:
    """Float16 weights and activations, float32 inputs and outputs."""
    return convert_fp16(model)[0]


def with_static_batch(model: onnx.ModelProto, batch: int) -> onnx.ModelProto:
    """A copy of ``model`` whose first input and output have the fixed batch ``batch``."""
    static = onnx.ModelProto()
    static.CopyFrom(model)
    for value in (static.graph.input[0], static.graph.output[0]):
        value.type.tensor_type.shape.dim[0].Clear()
        value.type.tensor_type.shape.dim[0].dim_value = batch
    return static
