"""Calibration and evaluation data: a folder of images or a ``.npy`` of preprocessed batches.

Images are preprocessed with the model's own metadata, exactly as :class:`Predictor` does.
A ``.npy`` must hold float32 ``[N, 3, H, W]`` arrays that are already preprocessed; it is read
with ``allow_pickle=False``. Anything that does not match the model's input is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ._errors import InputError
from .preprocess import IMAGE_SUFFIXES, Preprocessing

__all__ = ["load_samples", "check_samples", "fixed_batches", "IMAGE_SUFFIXES", "DEFAULT_MAX_SAMPLES"]

DEFAULT_MAX_SAMPLES = 128  # ORT's calibrators keep per-tensor statistics; 100-500 is the usual range


def _expected(input_shape: tuple[int | None, ...]) -> str:
    return "[N, " + ", ".join("?" if d is None else str(d) for d in input_shape[1:]) + "]"


def load_samples(
    source: str | Path,
    input_shape: tuple[int | None, ...],
    metadata: dict[str, Any],
    *,
    max_samples: int | None = DEFAULT_MAX_SAMPLES,
) -> np.ndarray:
    """Load up to ``max_samples`` preprocessed float32 inputs of shape ``[N, C, H, W]``."""
    source = Path(source)
    if max_samples is not None and max_samples < 1:
        raise InputError(f"max_samples must be at least 1, received {max_samples}")
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise InputError(f"no images ({', '.join(IMAGE_SUFFIXES)}) found in {source}")
        files = files[:max_samples] if max_samples else files
        pre = Preprocessing.from_metadata(metadata, (input_shape[2], input_shape[3]))
        array = pre.batch(files)
    elif source.is_file():
        if source.suffix.lower() != ".npy":
            raise InputError(f"calibration data must be a folder of images or a .npy file, received {source}")
        try:
            array = np.load(source, allow_pickle=False, mmap_mode="r")
        except (ValueError, OSError, EOFError) as exc:
            raise InputError(f"not a readable .npy file (pickled objects are refused): {source}") from exc
        # A scalar (0-d) array cannot be sliced: check_samples refuses its shape [] by name.
        array = np.array(array[:max_samples] if max_samples and array.ndim else array)
    else:
        raise InputError(f"calibration data not found: {source}")
    return check_samples(array, input_shape, source)


def check_samples(array: np.ndarray, input_shape: tuple[int | None, ...], source: str | Path) -> np.ndarray:
    """Refuse anything but finite float32 ``[N>0, C, H, W]`` matching the model's input."""
    if array.dtype != np.float32:
        raise InputError(f"{source} holds {array.dtype}; expected float32 {_expected(input_shape)}")
    if array.ndim != 4 or any(d is not None and d != s for d, s in zip(input_shape[1:], array.shape[1:])):
        raise InputError(f"{source} has shape {list(array.shape)}; the model expects {_expected(input_shape)}")
    if array.shape[0] == 0:
        raise InputError(f"{source} holds no samples")
    if not np.all(np.isfinite(array)):
        raise InputError(f"{source} holds NaN or infinite values")
    return np.ascontiguousarray(array, dtype=np.float32)


def fixed_batches(samples: np.ndarray, size: int) -> list[np.ndarray]:
    """``samples`` cut into batches of exactly ``size``, for a model whose batch is fixed: the
    last batch is filled up with samples from the start, so every sample is seen (a few twice)."""
    if size < 1 or len(samples) == 0:
        raise InputError(f"cannot form batches of {size} from {len(samples)} samples")
    count = -(-len(samples) // size)
    order = np.arange(count * size) % len(samples)
    return [samples[order[i * size : (i + 1) * size]] for i in range(count)]
