"""What an ONNX file is: its inputs, outputs, opsets, metadata, ops and size."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import onnx

from ..graph.io import load_onnx, op_counts, read_metadata
from . import SessionConfig, available_providers, node_placement

__all__ = ["model_info"]


def _type_name(t: onnx.TypeProto) -> tuple[str, onnx.TypeProto.Tensor | None]:
    """A value's type as text, with the tensor inside it: inputs may be sequences, maps or
    optionals (which have no dtype of their own), and a tensor's type may be undefined."""
    kind = t.WhichOneof("value")
    if kind == "tensor_type":
        elem = t.tensor_type.elem_type
        try:
            return onnx.helper.tensor_dtype_to_np_dtype(elem).name, t.tensor_type
        except KeyError:  # UNDEFINED, or a number onnx does not know
            return "undefined" if elem == onnx.TensorProto.UNDEFINED else f"elem_type {elem}", t.tensor_type
    if kind in ("sequence_type", "optional_type"):
        inner, tensor = _type_name(getattr(t, kind).elem_type)
        return f"{kind.removesuffix('_type')}({inner})", tensor
    if kind == "map_type":
        key = onnx.TensorProto.DataType.Name(t.map_type.key_type).lower()
        return f"map({key}, {_type_name(t.map_type.value_type)[0]})", None
    return kind or "undefined", None


def _value_info(v: onnx.ValueInfoProto) -> dict[str, Any]:
    dtype, tensor = _type_name(v.type)
    dims = ([d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tensor.shape.dim]
            if tensor else [])
    return {"name": v.name, "dtype": dtype, "shape": dims}


def model_info(path: str | Path, *, placement_provider: str | None = None) -> dict[str, Any]:
    """Describe ``path``; with ``placement_provider``, also which provider runs how many nodes."""
    path = Path(path)
    model = load_onnx(path)
    initializers = {t.name for t in model.graph.initializer}
    info: dict[str, Any] = {
        "path": str(path),
        "size_bytes": path.stat().st_size,
        "ir_version": model.ir_version,
        "opsets": {op.domain or "ai.onnx": op.version for op in model.opset_import},
        "producer": f"{model.producer_name} {model.producer_version}".strip(),
        "inputs": [_value_info(i) for i in model.graph.input if i.name not in initializers],
        "outputs": [_value_info(o) for o in model.graph.output],
        "parameters": int(sum(onnx.numpy_helper.to_array(t).size for t in model.graph.initializer)),
        "metadata": read_metadata(model),
        "ops": dict(op_counts(model).most_common()),
        "available_providers": available_providers(),
    }
    if placement_provider is not None:
        placement = node_placement(model.SerializeToString(), SessionConfig(provider=placement_provider))
        info["placement"] = {"provider": placement_provider, "nodes": dict(placement)}
    return info
