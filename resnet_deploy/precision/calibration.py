"""Calibration and evaluation data: a folder of images or a ``.npy`` of preprocessed batches.

Images are preprocessed with the model's own metadata, exactly as :class:`Predictor` does.
A ``.npy`` must hold float32 ``[N, 3, H, W]`` arrays that are already preprocessed; it is read
with ``allow_pickle=False``. Anything that does not match the model's input is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx

from .._errors import InputError
from .._owned import owned_tempdir
from ..graph.io import image_input, read_metadata
from ..preprocess.images import IMAGE_SUFFIXES, Preprocessing

__all__ = ["load_samples", "check_samples", "fixed_batches", "eval_arrays", "load_eval_data", "output_classes",
           "check_labels", "IMAGE_SUFFIXES", "DEFAULT_MAX_SAMPLES", "MAX_EVAL_SAMPLES"]

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


# -- evaluation data: labelled samples (bench --eval-data, tune, quantize --max-accuracy-drop/--sensitivity) --

def output_classes(model: onnx.ModelProto) -> int | None:
    """The number of classes of a classifier ``[N, classes]`` output, or None when the graph
    does not state it (a symbolic or missing dimension)."""
    if len(model.graph.output) != 1:
        return None
    dims = model.graph.output[0].type.tensor_type.shape.dim
    if len(dims) != 2 or not dims[1].HasField("dim_value") or dims[1].dim_value < 1:
        return None
    return int(dims[1].dim_value)


def check_labels(y: np.ndarray, classes: int | None, source: str | Path) -> None:
    """Refuse labels that name no class of the model: accuracy against them is 0 whatever the
    model computes, and used to be reported (and an INT8 model chosen) as if it meant something."""
    outside = (y < 0) if classes is None else ((y < 0) | (y >= classes))
    if outside.any():
        expected = ("class indices >= 0" if classes is None
                    else f"class indices 0..{classes - 1} (the model has {classes} classes)")
        raise InputError(f"{source}: labels must be {expected}; {int(outside.sum())} of {len(y)} are outside, "
                         f"e.g. {int(y[outside][0])}")


# Every candidate (bench, tune) and every trial (quantize --sensitivity, --max-accuracy-drop:
# one per block and more) runs all of the evaluation data: 60,000 samples ran for minutes.
MAX_EVAL_SAMPLES = 10_000


def _check_count(count: int | None, source: Path) -> None:
    if count is not None and count > MAX_EVAL_SAMPLES:
        raise InputError(f"{source} holds {count:,} evaluation samples; at most {MAX_EVAL_SAMPLES:,} are evaluated "
                         "(every candidate or trial runs them all): pass a subset")


def _npz_rows(source: Path) -> int | None:
    """The number of rows of ``x`` in an ``.npz``, from its header: nothing is decompressed."""
    try:
        with np.load(source, allow_pickle=False) as data, data.zip.open("x.npy") as fh:
            version = np.lib.format.read_magic(fh)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape = read(fh)[0]
    except Exception:  # no x, or an unusual header: loading it says what is wrong
        return None
    return int(shape[0]) if shape else None


def eval_arrays(source: str | Path, image_shape: tuple[int, int, int], metadata: dict[str, Any], folder: Path, *,
                classes: int | None) -> dict[str, str]:
    """Evaluation data as two .npy files (preprocessed inputs, integer labels) for the workers.

    ``source`` is an ``.npz`` with ``x`` (float32 ``[N, C, H, W]``) and ``y``, or a folder of
    class-index subfolders of images, preprocessed from ``metadata`` as :class:`Predictor` does.
    Every label must be a class of the model's ``classes`` (when known; never negative).
    """
    source = Path(source)
    shape = (None, *image_shape)
    if source.suffix == ".npz" and source.is_file():
        _check_count(_npz_rows(source), source)
        try:
            with np.load(source, allow_pickle=False) as data:
                x, y = data["x"], data["y"]
        except (KeyError, ValueError, OSError) as exc:
            raise InputError(f"{source} must be an .npz with arrays 'x' (float32 [N, 3, H, W]) "
                             "and 'y' (labels)") from exc
        x = check_samples(x, shape, source)
    elif source.is_dir():
        folders = sorted(p for p in source.iterdir() if p.is_dir())  # one per class
        if not folders or not all(p.name.isdigit() for p in folders):
            raise InputError(f"{source} needs one subfolder of images per class, named by the class index")
        _check_count(sum(1 for f in folders for p in f.iterdir()
                         if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES), source)
        batches = [load_samples(c, shape, metadata, max_samples=None) for c in folders]
        x = np.concatenate(batches)
        y = np.concatenate([np.full(len(b), int(c.name)) for b, c in zip(batches, folders)])
    else:
        raise InputError(f"evaluation data must be an .npz file or a folder of class subfolders: {source}")
    y = np.asarray(y)
    if y.dtype.kind not in "iu":
        # String or float labels used to end as an untyped ValueError of int().
        raise InputError(f"{source}: labels 'y' must be integer class indices, received {y.dtype}")
    y = y.astype(np.int64).reshape(-1)
    if len(y) != len(x):
        raise InputError(f"{source}: {len(x)} inputs but {len(y)} labels")
    check_labels(y, classes, source)
    np.save(folder / "eval_x.npy", x)
    np.save(folder / "eval_y.npy", y)
    return {"eval_x_path": str(folder / "eval_x.npy"), "eval_y_path": str(folder / "eval_y.npy")}


def load_eval_data(source: str | Path, model: onnx.ModelProto, label: str) -> tuple[np.ndarray, np.ndarray]:
    """Labelled data in memory (:func:`eval_arrays`' checks): the inputs and labels for ``model``."""
    image = image_input(model, label)
    with owned_tempdir("resnet-deploy-eval-") as tmp:
        paths = eval_arrays(source, tuple(image.shape[1:]), read_metadata(model), Path(tmp),  # type: ignore[arg-type]
                            classes=output_classes(model))
        return np.load(paths["eval_x_path"]), np.load(paths["eval_y_path"])
