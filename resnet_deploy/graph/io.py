"""Reading, validating, describing and saving ONNX files.

Every ONNX file a command reads passes through :func:`load_onnx`, which validates it with
``onnx.checker`` before anything hands it to onnxruntime: a corrupt or hostile file must give a
clear error, never crash the process. External-data references must stay inside the model's
folder.
"""

from __future__ import annotations

import collections
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import external_data_helper

from .._atomic import atomic_write_bytes
from .._errors import OnnxModelError, first_line
from .._hashing import model_digest
from .external import MAX_PROTO_BYTES, check_external_data, external_fields, inline_external_data
from .metadata import MAX_METADATA_DEPTH, json_depth, read_metadata, write_metadata

__all__ = [
    "load_onnx",
    "load_onnx_hashed",
    "model_sha256",
    "save_onnx",
    "model_files",
    "ImageInput",
    "image_input",
    "op_counts",
    "read_metadata",
    "json_depth",
    "MAX_METADATA_DEPTH",
    "write_metadata",
    "MAX_PROTO_BYTES",
    "DEFAULT_OPSET",
    "MIN_OPSET",
]

# The opset exports are written in by default, and the lowest accepted: torch.onnx's dynamo
# exporter emits 18 at the least. Here rather than in export.py so the CLI reads it without torch.
DEFAULT_OPSET = 18
MIN_OPSET = 18


def load_onnx(path: str | Path, *, check: bool = True) -> onnx.ModelProto:
    """Load and validate an ONNX file, with its external data if any."""
    return _read_model(Path(path), check=check, digest=False)[0]


def load_onnx_hashed(path: str | Path) -> tuple[onnx.ModelProto, str]:
    """:func:`load_onnx`, and the :func:`~resnet_deploy._hashing.model_digest` of exactly the
    bytes it parsed: every file (the model and each external-data file) is read once, hashed
    as it is read, and those same bytes become the model. A file swapped between a hash and a
    load cannot slip through, since there is no second read."""
    return _read_model(Path(path), check=True, digest=True)


def model_sha256(path: str | Path) -> str:
    """The digest a deployment profile records for ``path``: the file's SHA-256 for a
    single-file model; with external data, a digest covering the model and every data file
    (see :func:`~resnet_deploy._hashing.model_digest`)."""
    return _read_model(Path(path), check=False, digest=True)[1]


def _read_model(path: Path, *, check: bool, digest: bool) -> tuple[onnx.ModelProto, str]:
    """The model at ``path`` with its external data inlined, each file read once; with ``digest``
    also its :func:`~resnet_deploy._hashing.model_digest` (else ""), hashed in the same pass."""
    if not path.is_file():
        raise OnnxModelError(f"ONNX file not found: {path}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise OnnxModelError(f"could not read {path}: {exc.strerror or exc}") from exc
    if not data:
        raise OnnxModelError(f"ONNX file is empty: {path}")
    try:
        model = onnx.load_from_string(data)
    except Exception as exc:  # protobuf raises DecodeError, and others on garbage
        raise OnnxModelError(f"not a valid ONNX file: {path} (it could not be parsed)") from exc
    if not model.graph.node and not model.graph.output:
        raise OnnxModelError(f"not a valid ONNX file: {path} (no graph)")
    model_hex = hashlib.sha256(data).hexdigest() if digest else ""
    del data
    read_metadata(model, path)  # refuses values nested too deep to decode or print, naming the file
    check_external_data(model, path.parent, path)
    external = inline_external_data(model, path.parent, path, digest=digest)
    if check:
        check_onnx(model, path)
    return model, model_digest(model_hex, external) if digest else ""


def model_files(path: str | Path) -> list[Path]:
    """The files a model consists of: itself and the external-data files it names (inside its
    folder). A file that cannot be parsed is just itself; :func:`load_onnx` reports it later."""
    path = Path(path)
    files = [path]
    if not path.is_file() or path.suffix.lower() != ".onnx":
        return files
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:
        return files
    for tensor in external_data_helper._get_all_tensors(model):
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            location = external_fields(tensor).get("location", "")
            if location and not os.path.isabs(location):
                target = path.parent / location
                if target not in files and _valid_path(target):  # load_onnx reports invalid ones
                    files.append(target)
    return files


def _valid_path(path: Path) -> bool:
    """Whether the system takes ``path`` as a name (a NUL byte, a name too long: not), existing or not."""
    try:
        os.stat(path)
    except (OSError, ValueError) as exc:
        return isinstance(exc, FileNotFoundError)
    return True


def check_onnx(model: onnx.ModelProto, source: str | Path, *, full: bool = True) -> None:
    """``onnx.checker`` (with shape inference when ``full``), as a typed error."""
    try:
        if model.ByteSize() < MAX_PROTO_BYTES:
            onnx.checker.check_model(model, full_check=full)
        else:
            onnx.checker.check_model(str(source), full_check=full)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise OnnxModelError(f"invalid ONNX model {source}: {first_line(exc)}") from exc


def save_onnx(model: onnx.ModelProto, path: str | Path, *, replace: bool = True) -> int:
    """Write ``model`` atomically as a single file; returns its size in bytes. With
    ``replace=False`` an existing file at ``path`` is refused, never overwritten."""
    data = model.SerializeToString()
    atomic_write_bytes(path, data, replace=replace)
    return len(data)


def op_counts(model: onnx.ModelProto) -> collections.Counter[str]:
    """Node counts by op type; ops outside the default domain are shown as ``domain.Op``."""
    return collections.Counter(
        n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}.{n.op_type}" for n in model.graph.node
    )


@dataclass(frozen=True)
class ImageInput:
    """The single image input of a model: ``shape`` has None for symbolic dimensions."""

    name: str
    shape: tuple[int | None, ...]
    dtype: np.dtype

    def describe(self) -> str:
        """``[N, 3, 224, 224]``: the batch shown as N when it is dynamic, other symbols as ?."""
        return "[" + ", ".join(("N" if i == 0 else "?") if d is None else str(d)
                               for i, d in enumerate(self.shape)) + "]"

    def batch_shape(self, batch: int) -> tuple[int, ...]:
        """The concrete shape of a batch: a dynamic batch becomes ``batch``; any other symbol is refused."""
        for axis, dim in enumerate(self.shape[1:], 1):
            if dim is None:
                raise OnnxModelError(f"input {self.name!r} has a symbolic dimension at axis {axis}; "
                                     "only the batch may be dynamic")
        return (batch if self.shape[0] is None else self.shape[0], *self.shape[1:])  # type: ignore[return-value]


def image_input(model: onnx.ModelProto, source: str | Path = "model") -> ImageInput:
    """The model's one graph input that is not an initializer, as an ``[N, C, H, W]`` tensor.

    Raises OnnxModelError when there is not exactly one such input, when it is not a tensor of a
    numeric type, or when its rank is not 4.
    """
    initializers = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if len(inputs) != 1:
        names = ", ".join(i.name for i in inputs) or "none"
        raise OnnxModelError(f"{source} must have one image input [N, C, H, W]; it has {len(inputs)}: {names}")
    value = inputs[0]
    tensor = value.type.tensor_type
    if not value.type.HasField("tensor_type") or tensor.elem_type == onnx.TensorProto.UNDEFINED:
        raise OnnxModelError(f"{source}: input {value.name!r} is not a tensor")
    shape = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in tensor.shape.dim)
    if len(shape) != 4:
        raise OnnxModelError(f"{source}: input {value.name!r} has rank {len(shape)}; "
                             "expected an image batch [N, C, H, W]")
    return ImageInput(value.name, shape, np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type)))
