"""Preprocessing inside the graph: a classifier that takes uint8 RGB images of any size.

:func:`add_image_input` prepends to a classifier's ONNX graph the steps that
:class:`~resnet_deploy.preprocess.images.Preprocessing` does in PIL, so that an application in any
language onnxruntime runs in (C++, C#, Java, JavaScript, phones) feeds decoded pixels as they
are and gets the answer Python gets:

    image uint8 [N, H, W, 3] -> Cast float -> Transpose NCHW
      -> Resize the width, round   \\  the shorter side to ``resize_size``, the longer truncated
      -> Resize the height, round  /  (``Preprocessing.resized_size``), antialiased bilinear
      -> Slice the centre ``crop_size`` square (offsets rounded half to even, as Python's round)
      -> / 255 -> - mean -> / std  -> the original model -> logits [, scores, top-k]

(Why two resizes with rounding: :mod:`.nodes`.)

Every node and initializer added here is named ``image_input/...``; the original model's input
tensor keeps its name, and its description is kept in the graph's ``value_info``, so
:func:`split_image_input` can take the float classifier back out (quantize and fp16 transform the
classifier only and prepend the same preprocessing again: it stays float).

Images of one batch share one size. H and W must be at least 1; a 0-pixel side divides by zero
in the size arithmetic: callers refuse it first, as :class:`~resnet_deploy.runtime.Predictor` does.

One module each: :mod:`.spec` (the names, :class:`ImageInputSpec`, :func:`is_image_input`),
:mod:`.nodes` (the preprocessing and top-k nodes), :mod:`.build` (:func:`add_image_input` and
what it refuses), :mod:`.split` (:func:`split_image_input`, :func:`classifier_and_spec`).
"""

from __future__ import annotations

from .build import add_image_input
from .spec import (
    IMAGE_INPUT_FORMAT, IMAGE_INPUT_NAME, IMAGE_INPUT_OPSET, ImageInputRequest, ImageInputSpec, is_image_input,
    preprocessing_for,
)
from .split import classifier_and_spec, split_image_input

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
