"""Reading, validating, describing and saving ONNX files.

Every ONNX file a command reads passes through :func:`load_onnx`, which validates it with
``onnx.checker`` before anything hands it to onnxruntime: a corrupt or hostile file must give a
clear error, never crash the process. External-data references must stay inside the model's
folder.
"""

from __future__ import annotations

import collections
import hashlib
import json
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import external_data_helper

from ._atomic import atomic_write_bytes
from ._errors import OnnxModelError, first_line
from ._hashing import model_digest

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

MAX_PROTO_BYTES = 2**31 - 1  # protobuf's limit; larger models need external data
# The opset exports are written in by default, and the lowest accepted: torch.onnx's dynamo
# exporter emits 18 at the least. Here rather than in export.py so the CLI reads it without torch.
DEFAULT_OPSET = 18
MIN_OPSET = 18


def _external_fields(tensor: onnx.TensorProto) -> dict[str, str]:
    """A tensor's external-data entries as written (onnx's ExternalDataInfo raises a bare
    ValueError on a bad number: read them here, check them below)."""
    return {entry.key: entry.value for entry in tensor.external_data}


def _byte_count(fields: dict[str, str], key: str, default: int, where: str) -> int:
    value = fields.get(key)
    if value is None:
        return default
    if not re.fullmatch(r"[0-9]{1,19}", value):  # int() would take " 5", "+5", "1_0" and "-5"
        raise OnnxModelError(f"{where}: external data {key!r} must be a whole number of bytes, received {value[:40]!r}")
    return int(value)


def _check_external_data(model: onnx.ModelProto, folder: Path, path: Path) -> None:
    """Every external-data reference names a regular file inside ``folder``, and the bytes it
    reads lie within that file: checked here, before onnx opens anything. The model and its
    external data together must fit the one protobuf they are read into (:data:`MAX_PROTO_BYTES`)."""
    base = folder.resolve()
    total = path.stat().st_size
    for tensor in external_data_helper._get_all_tensors(model):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        fields = _external_fields(tensor)
        location = fields.get("location", "")
        where = f"{path}: tensor {tensor.name!r}"
        if not location:
            raise OnnxModelError(f"{where} is stored as external data but names no 'location'")
        try:
            target = (base / location).resolve()
            outside = os.path.isabs(location) or (target != base and base not in target.parents)
            is_dir, is_file = (False, False) if outside else (target.is_dir(), target.is_file())
        except (OSError, ValueError) as exc:  # a NUL byte, a name longer than the file system allows
            raise OnnxModelError(f"{where}: external data location {location[:80]!r} is not a valid path") from exc
        if outside:
            raise OnnxModelError(f"refused {path}: tensor {tensor.name!r} points to external data outside the "
                                 f"model's folder ({location!r})")
        if is_dir:
            raise OnnxModelError(f"{where}: external data location {location!r} is a folder, not a file")
        if not is_file:
            if target.exists():  # a FIFO or a device: reading it could block forever
                raise OnnxModelError(f"{where}: external data location {location!r} is not a regular file")
            raise OnnxModelError(f"external data file of {path} not found: {target.name}")
        size = target.stat().st_size
        offset = _byte_count(fields, "offset", 0, where)
        length = _byte_count(fields, "length", max(size - offset, 0), where)
        if offset > size:
            raise OnnxModelError(f"{where}: external data 'offset' {offset} lies beyond the end of {location!r} ({size} bytes)")
        if offset + length > size:
            raise OnnxModelError(f"{where} reads bytes {offset}-{offset + length} of {location!r}, which has {size} bytes")
        total += length
    if total > MAX_PROTO_BYTES:  # read whole, a 2.2 GB model peaked at 6.8 GB and died in the checker
        raise OnnxModelError(f"{path} holds {total / 2**30:.1f} GiB with its external data; models are read into one "
                             "protobuf in memory, which holds at most 2 GiB")


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
    _check_external_data(model, path.parent, path)
    external = _inline_external_data(model, path.parent, path, digest=digest)
    if check:
        check_onnx(model, path)
    return model, model_digest(model_hex, external) if digest else ""


_CHUNK = 1 << 24


def _inline_external_data(model: onnx.ModelProto, folder: Path, path: Path, *, digest: bool) -> dict[str, str]:
    """Read each external-data file once, put every tensor's bytes into the model (as onnx's
    ``load_external_data_for_model`` does) and return each file's SHA-256 by its location
    (with ``digest``; else empty strings)."""
    by_file: dict[str, list[tuple[onnx.TensorProto, int, int | None]]] = {}
    for tensor in external_data_helper._get_all_tensors(model):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        fields = _external_fields(tensor)
        where = f"{path}: tensor {tensor.name!r}"
        offset = _byte_count(fields, "offset", 0, where)
        length = _byte_count(fields, "length", 0, where) or None  # onnx reads to the end for 0 or none
        by_file.setdefault(fields["location"], []).append((tensor, offset, length))
    digests = {location: _read_external_file(folder / location, tensors, path, location, digest=digest)
               for location, tensors in by_file.items()}
    for tensors in by_file.values():
        for tensor, _, _ in tensors:
            tensor.data_location = onnx.TensorProto.DEFAULT
            del tensor.external_data[:]
    return digests


def _read_external_file(target: Path, tensors: list[tuple[onnx.TensorProto, int, int | None]], path: Path,
                        location: str, *, digest: bool) -> str:
    """One pass over an external-data file: keep the ranges the tensors name, and with ``digest``
    hash every byte (its hex SHA-256 is returned, else "")."""
    hasher = hashlib.sha256() if digest else None
    parts = [bytearray() for _ in tensors]
    try:
        fd = os.open(target, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO swapped in must not block us
        with os.fdopen(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                raise OnnxModelError(f"{path}: external data location {location!r} is not a regular file")
            pos = 0
            while chunk := fh.read(_CHUNK):
                if hasher is not None:
                    hasher.update(chunk)
                view, end = memoryview(chunk), pos + len(chunk)
                for (_, offset, length), part in zip(tensors, parts):
                    low, high = max(offset, pos), min(end if length is None else offset + length, end)
                    if low < high:
                        part += view[low - pos : high - pos]
                pos = end
    except OSError as exc:
        raise OnnxModelError(f"could not read the external data of {path}: {exc.strerror or exc}") from exc
    for (tensor, offset, length), part in zip(tensors, parts):
        if offset > pos or (length is not None and offset + length > pos):  # the file shrank since it was checked
            raise OnnxModelError(f"{path}: tensor {tensor.name!r} reads past the end of {location!r} ({pos} bytes)")
        tensor.raw_data = bytes(part)
        part.clear()
    return hasher.hexdigest() if hasher is not None else ""


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
            location = _external_fields(tensor).get("location", "")
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
        return "[" + ", ".join(("N" if i == 0 else "?") if d is None else str(d) for i, d in enumerate(self.shape)) + "]"

    def batch_shape(self, batch: int) -> tuple[int, ...]:
        """The concrete shape of a batch: a dynamic batch becomes ``batch``; any other symbol is refused."""
        for axis, dim in enumerate(self.shape[1:], 1):
            if dim is None:
                raise OnnxModelError(f"input {self.name!r} has a symbolic dimension at axis {axis}; only the batch may be dynamic")
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
        raise OnnxModelError(f"{source}: input {value.name!r} has rank {len(shape)}; expected an image batch [N, C, H, W]")
    return ImageInput(value.name, shape, np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type)))


# Our own metadata nests two levels at most (a list of labels); 32 leaves room for anyone
# else's keys, far below the depth where decoding or printing a value recurses too deep.
MAX_METADATA_DEPTH = 32


def read_metadata(model: onnx.ModelProto, source: str | Path = "model") -> dict[str, Any]:
    """``metadata_props`` with JSON values decoded where they are JSON.

    A value nested deeper than :data:`MAX_METADATA_DEPTH` (``[[[[...]]]]``, which used to end in
    a RecursionError) is refused naming ``source`` and the key."""
    out: dict[str, Any] = {}
    for prop in model.metadata_props:
        try:
            value = json.loads(prop.value)
        except ValueError:
            out[prop.key] = prop.value
            continue
        except RecursionError:
            value = None
            depth = MAX_METADATA_DEPTH + 1
        else:
            depth = json_depth(value)
        if depth > MAX_METADATA_DEPTH:
            raise OnnxModelError(f"{source}: metadata {prop.key!r} is JSON nested more than {MAX_METADATA_DEPTH} levels deep")
        out[prop.key] = value
    return out


def json_depth(value: Any) -> int:
    """How deeply lists and dicts nest in a decoded JSON value (a scalar is 0), without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return deepest


def write_metadata(model: onnx.ModelProto, values: dict[str, Any]) -> None:
    """Set ``metadata_props``; non-string values are stored as JSON."""
    existing = {p.key: p for p in model.metadata_props}
    for key, value in values.items():
        try:
            text = value if isinstance(value, str) else json.dumps(value, allow_nan=False)
        except ValueError as exc:  # NaN or Inf: not JSON, and never a valid preprocessing value
            raise OnnxModelError(f"metadata {key!r} is not finite: {value!r}") from exc
        if key in existing:
            existing[key].value = text
        else:
            model.metadata_props.add(key=key, value=text)
