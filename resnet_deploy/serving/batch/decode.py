"""Decoding in a worker: a batch of paths -> the arrays the model takes, and a reason per image
that has none.

Each image goes through the Predictor's own functions (:class:`~resnet_deploy.preprocess.images.Preprocessing`
for a float model, :func:`~resnet_deploy.runtime.raw_images.decode` for one that preprocesses in
its graph), so a worker's tensor is bit for bit the one ``Predictor.preprocess`` makes. What those
functions refuse (undecodable, truncated, too large, a mode without an RGB equivalent) becomes that
image's status; nothing one image does stops the batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..._errors import InputError, first_line
from ...preprocess.images import Preprocessing
from ...runtime.raw_images import decode, size_groups
from .remote import is_url, open_image

__all__ = ["DecodeSpec", "Decoded", "decode_batch", "OK"]

OK = "ok"  # the status of an image that has an answer; any other status says why it has none


@dataclass(frozen=True)
class DecodeSpec:
    """What a worker needs to know of the model (sent to it once per batch, a few hundred bytes)."""

    preprocessing: Preprocessing
    takes_images: bool  # uint8 RGB [N, H, W, 3] of any size: the graph resizes and normalises
    dtype: str  # the model's input dtype (a float model's tensor is cast to it, as Predictor.preprocess does)


@dataclass(frozen=True)
class Decoded:
    """One batch, decoded. ``groups`` holds (row positions, stacked arrays): one group for a
    float model, one per image size for a model that takes images (a batch holds one size)."""

    paths: tuple[str, ...]
    statuses: tuple[str, ...]
    groups: tuple[tuple[tuple[int, ...], np.ndarray], ...]


def _reason(exc: Exception) -> str:
    if isinstance(exc, InputError):
        return first_line(exc)
    # Not a refusal of ours: PIL or numpy failing on a file nobody foresaw. Still that image's
    # fault, so still that image's row, named for what it is.
    return f"could not decode: {type(exc).__name__}: {first_line(exc)}"


def decode_batch(paths: Sequence[str], spec: DecodeSpec) -> Decoded:
    """Decode and preprocess ``paths``; a path that fails gets its reason as status."""
    arrays: list[np.ndarray] = []
    kept: list[int] = []
    statuses = [OK] * len(paths)
    for i, path in enumerate(paths):
        try:
            image = open_image(path) if is_url(path) else path
            arrays.append(decode(image, spec.preprocessing, name=path) if spec.takes_images
                          else spec.preprocessing(image, name=path))
            kept.append(i)
        except Exception as exc:  # noqa: BLE001 - one image's failure is that image's row (see _reason)
            statuses[i] = _reason(exc)
    if not arrays:
        groups: tuple[tuple[tuple[int, ...], np.ndarray], ...] = ()
    elif spec.takes_images:
        groups = tuple((tuple(kept[j] for j in g), np.stack([arrays[j] for j in g])) for g in size_groups(arrays))
    else:
        groups = (((*kept,), np.stack(arrays).astype(spec.dtype, copy=False)),)
    return Decoded(tuple(paths), tuple(statuses), groups)
