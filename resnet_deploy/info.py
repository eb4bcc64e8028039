"""What an ONNX file is: its inputs, outputs, opsets, metadata, ops and size."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import onnx

from .onnx_io import load_onnx, op_counts, read_metadata
from .runtime import SessionConfig, available_providers, node_placement

__all__ = ["model_info"]


def _value_info(v: onnx.ValueInfoProto) -> dict[str, Any]:
    t = v.type.tensor_type
    dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in t.shape.dim]
    return {"name": v.name, "dtype": onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name, "shape": dims}


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
