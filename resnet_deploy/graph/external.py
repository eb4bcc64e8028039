"""External data of an ONNX file: checked to stay inside the model's folder and within bounds,
then read into the model once (hashed as it is read, for a profile's digest)."""

from __future__ import annotations

import hashlib
import os
import re
import stat
from pathlib import Path

import onnx
from onnx import external_data_helper

from .._errors import OnnxModelError

__all__ = ["check_external_data", "inline_external_data", "external_fields", "MAX_PROTO_BYTES"]

MAX_PROTO_BYTES = 2**31 - 1  # protobuf's limit; larger models need external data


def external_fields(tensor: onnx.TensorProto) -> dict[str, str]:
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


def check_external_data(model: onnx.ModelProto, folder: Path, path: Path) -> None:
    """Every external-data reference names a regular file inside ``folder``, and the bytes it
    reads lie within that file: checked here, before onnx opens anything. The model and its
    external data together must fit the one protobuf they are read into (:data:`MAX_PROTO_BYTES`)."""
    base = folder.resolve()
    total = path.stat().st_size
    for tensor in external_data_helper._get_all_tensors(model):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        fields = external_fields(tensor)
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
            raise OnnxModelError(f"{where}: external data 'offset' {offset} lies beyond the end of {location!r} "
                                 f"({size} bytes)")
        if offset + length > size:
            raise OnnxModelError(f"{where} reads bytes {offset}-{offset + length} of {location!r}, "
                                 f"which has {size} bytes")
        total += length
    if total > MAX_PROTO_BYTES:  # read whole, a 2.2 GB model peaked at 6.8 GB and died in the checker
        raise OnnxModelError(f"{path} holds {total / 2**30:.1f} GiB with its external data; models are read into one "
                             "protobuf in memory, which holds at most 2 GiB")


_CHUNK = 1 << 24


def inline_external_data(model: onnx.ModelProto, folder: Path, path: Path, *, digest: bool) -> dict[str, str]:
    """Read each external-data file once, put every tensor's bytes into the model (as onnx's
    ``load_external_data_for_model`` does) and return each file's SHA-256 by its location
    (with ``digest``; else empty strings)."""
    by_file: dict[str, list[tuple[onnx.TensorProto, int, int | None]]] = {}
    for tensor in external_data_helper._get_all_tensors(model):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        fields = external_fields(tensor)
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


