"""Images as they are, for models whose preprocessing is in the graph (``export --image-input``).

Such a model takes uint8 RGB ``[N, H, W, 3]``; decoding stays on the host (EXIF orientation and
every PIL mode converted to RGB exactly as for a float model, :func:`~resnet_deploy.preprocess.images.load_image`),
resizing and normalising do not. One batch holds one size: :func:`size_groups` splits a list of
images into runs of one size each, in the order given, within the pixel budget below.

Such a model resizes inside the graph, so its intermediate tensors grow with the images as they
are, not with the model's input size: eight 4000x4000 PNGs stacked into one run peaked at 4.0 GB
(0.25 GB for the float model on the same files). :func:`image_batches` therefore decodes lazily
and stacks images only while their pixels stay within :data:`BATCH_PIXELS`; a larger image runs
alone.

The bounds are the float path's: no image without pixels (the graph's size arithmetic would divide
by zero), and none whose resized size exceeds :data:`~resnet_deploy.preprocess.images.MAX_RESIZE_PIXELS`,
nor one larger than that as it is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from .._errors import InputError, RuntimeBackendError
from ..preprocess.images import MAX_RESIZE_PIXELS, ImageLike, Preprocessing, load_image, to_rgb
from .providers import resolve_provider

__all__ = ["decode", "check_image_batch", "check_image_provider", "stack_one_size", "size_groups", "image_batches",
           "run_within_budget", "BATCH_PIXELS", "EXPECTED"]

# Pixels one run of an image-input model may hold: a 2048x2048 image, or 83 at 224x224.
BATCH_PIXELS = 2**22
EXPECTED = "uint8 RGB images [N, H, W, 3] (its preprocessing is in the graph)"


def _name(image: ImageLike) -> str:
    return str(image) if isinstance(image, (str, Path)) else "image"


def decode(image: ImageLike, preprocessing: Preprocessing, *, name: str | None = None) -> np.ndarray:
    """One image -> uint8 ``[H, W, 3]``, upright and RGB, within the size bounds; ``name`` is what
    a refusal calls it (default: its path, else "image")."""
    name = name or _name(image)
    img = to_rgb(load_image(image), name)
    _check_size(img.size[0], img.size[1], preprocessing, name)
    return np.asarray(img, dtype=np.uint8)


def _check_size(width: int, height: int, preprocessing: Preprocessing, name: str) -> None:
    if width * height > MAX_RESIZE_PIXELS:
        raise InputError(f"refused {name}: a {width}x{height} image has more than {MAX_RESIZE_PIXELS:,} pixels")
    preprocessing.check_size(width, height, name=name)


def check_image_batch(batch: Any, preprocessing: Preprocessing) -> np.ndarray:
    """``batch`` as a contiguous uint8 ``[N>0, H>0, W>0, 3]`` array, or one line saying what is wrong."""
    if isinstance(batch, (list, tuple)) and all(isinstance(b, np.ndarray) for b in batch):
        sizes = sorted({tuple(b.shape) for b in batch})
        if len(sizes) > 1:
            raise InputError(f"images of different sizes cannot share a batch ({', '.join(map(str, sizes[:4]))}); "
                             "run each size on its own (Predictor.predict does)")
    if not isinstance(batch, np.ndarray):
        raise InputError(f"expected a numpy array of {EXPECTED}, received {type(batch).__name__}")
    if batch.dtype != np.uint8:
        raise InputError(f"this model takes {EXPECTED}; received {batch.dtype} {list(batch.shape)}")
    if batch.ndim != 4 or batch.shape[3] != 3:
        channels = f"{batch.shape[3]} channels" if batch.ndim == 4 else f"rank {batch.ndim}"
        raise InputError(f"this model takes {EXPECTED}; received shape {list(batch.shape)} ({channels})")
    if batch.shape[0] == 0:
        raise InputError("empty batch: the first dimension is 0")
    _check_size(batch.shape[2], batch.shape[1], preprocessing, "image batch")
    return np.ascontiguousarray(batch)


def stack_one_size(arrays: Sequence[np.ndarray], names: Sequence[str]) -> np.ndarray:
    """One batch of images of one size, or an error naming two that differ."""
    first = arrays[0].shape
    other = next((i for i, a in enumerate(arrays) if a.shape != first), None)
    if other is not None:
        raise InputError(f"images of different sizes cannot share a batch: {names[0]} is {first[1]}x{first[0]}, "
                         f"{names[other]} {arrays[other].shape[1]}x{arrays[other].shape[0]}")
    return np.stack(arrays)


def size_groups(arrays: Sequence[np.ndarray], *, max_pixels: int = BATCH_PIXELS) -> list[list[int]]:
    """Indices of ``arrays`` grouped by shape, groups in order of first appearance, each cut so
    that one run holds at most ``max_pixels`` pixels (or a single image): batch's rule for what
    its workers decoded, as :func:`image_batches` is predict's."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, array in enumerate(arrays):
        groups.setdefault(array.shape, []).append(i)
    runs = []
    for members in groups.values():
        # max(1, ...): an image without pixels is refused by Predictor
        per_run = max(1, max_pixels // max(1, _pixels(arrays[members[0]])))
        runs += [members[k : k + per_run] for k in range(0, len(members), per_run)]
    return runs


def image_batches(
    images: Sequence[ImageLike], preprocessing: Preprocessing, *, max_pixels: int = BATCH_PIXELS
) -> Iterator[tuple[list[int], np.ndarray]]:
    """``(indices, uint8 [N, H, W, 3])`` runs of consecutive images of one size, decoded one at a
    time, each run holding at most ``max_pixels`` pixels or a single image; every index once, in order."""
    pending: list[int] = []
    arrays: list[np.ndarray] = []
    for i, image in enumerate(images):
        array = decode(image, preprocessing)
        if arrays and (array.shape != arrays[0].shape or (len(arrays) + 1) * _pixels(array) > max_pixels):
            yield pending, np.stack(arrays)
            pending, arrays = [], []
        pending.append(i)
        arrays.append(array)
    if arrays:
        yield pending, np.stack(arrays)


def run_within_budget(run: Callable[[np.ndarray], np.ndarray], batches: Sequence[np.ndarray], *,
                      max_pixels: int = BATCH_PIXELS) -> np.ndarray:
    """The output rows of ``run`` for every image of ``batches`` (uint8 ``[N, H, W, 3]`` each, of
    any sizes), in the order given, each call of ``run`` holding images of one size and at most
    ``max_pixels`` pixels, or a single image (:func:`size_groups`). This is how a Triton entry's
    ``model.py`` runs the requests the dynamic batcher merged: eight 3000x3000 requests, each
    within the request bound, made one 2.6 GB run before."""
    images = [image for batch in batches for image in batch]  # views: only one run is copied at a time
    if not images:
        raise InputError("empty batch: the first dimension is 0")
    rows: list[np.ndarray] = [np.empty(0)] * len(images)
    for group in size_groups(images, max_pixels=max_pixels):
        for i, row in zip(group, run(np.stack([images[i] for i in group]))):
            rows[i] = row
    return np.stack(rows)


def _pixels(array: np.ndarray) -> int:
    return int(array.shape[0]) * int(array.shape[1])


def check_image_provider(provider: str, source: str | Path) -> None:
    """Refuse a provider that computes the in-graph resize differently: a wrong answer, not an error.

    OpenVINO's antialiased ``Resize`` is not onnxruntime's (nor PIL's): on the photos of
    :func:`~resnet_deploy.export.image_input.photo_variants` the OpenVINO runtime (2026.4) moved
    ResNet-20's logits by up to 0.27 of the largest and changed one top-1 (ResNet-18: 0.06).
    """
    if resolve_provider(provider) == "openvino":
        raise RuntimeBackendError(
            f"{source} has its preprocessing in the graph, and OpenVINO's antialiased Resize does not match PIL's "
            "(logits off by up to 27 % here): run it with --provider cpu, or give OpenVINO the float model")
