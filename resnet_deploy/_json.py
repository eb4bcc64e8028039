"""Strict JSON for everything we print or write: no bare ``NaN``/``Infinity`` (not JSON; strict
parsers such as ``JSON.parse`` and ``jq`` reject them).

A measurement that has no finite value (an error of an engine that produced NaN) is written as
``null``, the JSON for "no value"; answers that must be finite (a prediction's scores) are
refused before they get here.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any

__all__ = ["dumps", "finite_or_none", "json_depth", "loads_with_depth"]


def finite_or_none(value: Any) -> Any:
    """``value`` with every non-finite float, in any nesting of dicts, lists and tuples, as None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(v) for v in value]
    return value


def dumps(payload: Any, **kwargs: Any) -> str:
    """``json.dumps`` that always yields strict JSON (``allow_nan=False`` after mapping NaN/Inf to null)."""
    return json.dumps(finite_or_none(payload), allow_nan=False, **kwargs)


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


def loads_with_depth(text: str | bytes) -> tuple[Any, int]:
    """Decoded JSON and how deeply it nests; JSON nested past the decoder's recursion limit comes
    back as ``(None, sys.maxsize)``, to be refused by the caller's bound. Raises ValueError (and
    UnicodeDecodeError) on text that is not JSON."""
    try:
        value = json.loads(text)
    except RecursionError:
        return None, sys.maxsize
    return value, json_depth(value)
