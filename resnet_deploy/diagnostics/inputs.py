"""What a comparison reads: the files (float classifiers) and the inputs they are compared on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

from .._errors import InputError
from ..precision.calibration import DEFAULT_MAX_SAMPLES, load_samples
from ..image_input import is_image_input
from ..graph.io import image_input, load_onnx, read_metadata
from ..graph.verify import fixed_inputs

__all__ = ["load_model", "load_inputs"]


def load_model(path: str | Path) -> onnx.ModelProto:
    """A file to compare: a float classifier; one with the preprocessing inside is refused by name."""
    model = load_onnx(path)
    if is_image_input(model):
        raise InputError(f"{path} takes uint8 images with the preprocessing inside; compare the float file it was "
                         "made from (its blocks are the same)")
    return model


def load_inputs(model: onnx.ModelProto, source: str | Path | None, *, samples: int | None, label: str) -> np.ndarray:
    """``samples`` inputs from a folder of images or a ``.npy``, or seeded standard-normal ones."""
    image = image_input(model, label)
    if source is None:
        count = samples or 8
        return fixed_inputs((count, *image.batch_shape(1)[1:]))
    return load_samples(source, image.shape, read_metadata(model), max_samples=samples or DEFAULT_MAX_SAMPLES)
