"""Strict JSON for everything we print or write: no bare ``NaN``/``Infinity`` (not JSON; strict
parsers such as ``JSON.parse`` and ``jq`` reject them).

A measurement that has no finite value (an error of an engine that produced NaN) is written as
``null``, the JSON for "no value"; answers that must be finite (a prediction's scores) are
refused before they get here.
"""

from __future__ import annotations

import json
import math
from typing import Any

__all__ = ["dumps", "finite_or_none"]


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
