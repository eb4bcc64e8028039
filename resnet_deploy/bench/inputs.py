"""What the workers are fed: the model file's input, the fixed input batch, the evaluation data.

Torch-free: a benchmark of ONNX files needs onnx and numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from .._errors import InputError, OnnxModelError
from ..calibration import IMAGE_SUFFIXES, check_samples, load_samples
from ..image_input_graph import is_image_input
from ..onnx_io import image_input, load_onnx, read_metadata
from ..verify import fixed_inputs

__all__ = ["ModelFile", "read_model_file", "write_input", "eval_arrays", "output_classes", "check_labels"]

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
    """Validate an ONNX file (``onnx.checker`` first, as every command does) and read its image input."""
    path = Path(path)
    model = load_onnx(path)
    image = image_input(model, path.name)
    takes_images = is_image_input(model)
    if takes_images:  # any size: measured on one photo of a fixed size, decoded (decoding is not timed)
        image = replace(image, shape=(image.shape[0], *benchmark_photo().shape), dtype=np.dtype(np.uint8))
    image.batch_shape(1)  # refuses symbolic dimensions other than the batch
    if not takes_images and image.dtype not in (np.float32, np.float16):
        raise OnnxModelError(f"{path.name}: input {image.name!r} is {image.dtype}; the benchmark feeds float32 or float16")
    ops = {n.op_type for n in model.graph.node}
    if ops & _INT8_OPS:
        precision = "int8"
    elif any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer):
        precision = "fp16"
    else:
        precision = "fp32"
    return ModelFile(path, image.name, image.shape, str(image.dtype), precision, read_metadata(model), output_classes(model),
                     takes_images)


def benchmark_photo() -> np.ndarray:
    """What an image-input file is fed: the shipped portrait, 512x600 pixels, decoded to uint8 RGB [600, 512, 3]."""
    from ..preprocess import load_image, sample_image_path

    return np.asarray(load_image(sample_image_path()).convert("RGB"), dtype=np.uint8)


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
        expected = "class indices >= 0" if classes is None else f"class indices 0..{classes - 1} (the model has {classes} classes)"
        raise InputError(f"{source}: labels must be {expected}; {int(outside.sum())} of {len(y)} are outside, "
                         f"e.g. {int(y[outside][0])}")


def write_input(shape: tuple[int, ...], dtype: str, path: Path) -> Path:
    """The fixed input every engine of one batch size runs on (seeded, standard normal; for an
    image-input file, uint8, the benchmark photo repeated over the batch)."""
    if dtype == "uint8":
        np.save(path, np.ascontiguousarray(np.broadcast_to(benchmark_photo(), shape)))
        return path
    np.save(path, fixed_inputs(shape, seed=42).astype(dtype))
    return path


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
            raise InputError(f"{source} must be an .npz with arrays 'x' (float32 [N, 3, H, W]) and 'y' (labels)") from exc
        x = check_samples(x, shape, source)
    elif source.is_dir():
        folders = sorted(p for p in source.iterdir() if p.is_dir())  # one per class
        if not folders or not all(p.name.isdigit() for p in folders):
            raise InputError(f"{source} needs one subfolder of images per class, named by the class index")
        _check_count(sum(1 for f in folders for p in f.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES), source)
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
