"""A model's metadata: JSON values under string keys in ``metadata_props``, bounded in depth."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import onnx

from .._errors import OnnxModelError
from .._json import json_depth, loads_with_depth

__all__ = ["read_metadata", "write_metadata", "json_depth", "MAX_METADATA_DEPTH"]


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
            value, depth = loads_with_depth(prop.value)
        except ValueError:
            out[prop.key] = prop.value
            continue
        if depth > MAX_METADATA_DEPTH:
            raise OnnxModelError(f"{source}: metadata {prop.key!r} is JSON nested more than "
                                 f"{MAX_METADATA_DEPTH} levels deep")
        out[prop.key] = value
    return out


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
