"""The schema of a deployment profile: every field's type and range, and the session options a
profile may set (an allow-list). A profile is data, not configuration passed through."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from .._errors import InputError
from .._json import json_depth
from .._names import OPENVINO_RUNTIME

__all__ = ["ProfileError", "SESSION_FIELDS", "check_session", "check_profile_fields", "MAX_PROFILE_BYTES", "MAX_DEPTH"]

MAX_PROFILE_BYTES = 1 << 20
MAX_DEPTH = 4  # profile -> candidates -> one candidate -> its values
MAX_CANDIDATES = 256
MAX_TEXT = 4096  # characters of any string field
MAX_BATCH = 4096  # as bench's --batch-size
MAX_THREADS = 4096  # the runtime also caps threads at 4x this machine's cores
MAX_STREAMS = 256  # OpenVINO's streams, as Triton's instances



class ProfileError(InputError):
    """A deployment profile that cannot be used here."""


# -- the schema: what each field may hold ------------------------------------------------------

@dataclass(frozen=True)
class _Kind:
    """A field's type and range: a test, and the words that describe it in a refusal."""

    expected: str
    test: Callable[[Any], bool]


def _int(low: int, high: int, *, optional: bool = False) -> _Kind:
    words = f"an integer from {low} to {high}" + (" or null" if optional else "")
    return _Kind(words, lambda v: (optional and v is None)
                 or (isinstance(v, int) and not isinstance(v, bool) and low <= v <= high))


def _one_of(*values: str, optional: bool = False) -> _Kind:
    words = "one of " + ", ".join(map(repr, values)) + (" or null" if optional else "")
    return _Kind(words, lambda v: (optional and v is None) or (isinstance(v, str) and v in values))


def _text(*, optional: bool = False) -> _Kind:
    return _Kind("a string" + (" or null" if optional else ""),
                 lambda v: (optional and v is None) or (isinstance(v, str) and len(v) <= MAX_TEXT and "\0" not in v))


def _number(low: float = 0.0, high: float = math.inf) -> _Kind:
    words = f"a finite number from {low:g}" + ("" if high == math.inf else f" to {high:g}") + " or null"
    return _Kind(words, lambda v: v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)
                                                and math.isfinite(v) and low <= v <= high))


_BOOL = _Kind("true or false", lambda v: isinstance(v, bool))
_SCALAR = _Kind("a string, a finite number, true, false or null",
                lambda v: v is None or isinstance(v, bool) or _text().test(v) or _number(-math.inf).test(v))

# The session options a profile may set: a typed allow-list of SessionConfig's fields. Nothing
# else is accepted, in particular no option that names a path or switches on a side effect:
# profile_dir (every run writes onnxruntime trace files there), trt_cache_dir (TensorRT writes
# its engines there, creating the folder), extra (raw options passed through). A profile is data.
SESSION_FIELDS: dict[str, _Kind] = {
    "threads": _int(1, MAX_THREADS, optional=True),
    "optimization": _one_of("disable", "basic", "extended", "all"),
    "cudnn_conv_algo_search": _one_of("EXHAUSTIVE", "HEURISTIC", "DEFAULT"),
    "cuda_graph": _BOOL,
    "prefer_nhwc": _BOOL,
    "fp16": _BOOL,
    "openvino_precision": _one_of("BF16", "FP32", optional=True),
    "static_batch": _int(1, MAX_BATCH, optional=True),
    "streams": _int(1, MAX_STREAMS),
}
_FIELDS: dict[str, _Kind] = {
    "model": _Kind("a non-empty string", lambda v: _text().test(v) and bool(v)),
    "model_sha256": _Kind("64 lowercase hex digits",
                          lambda v: isinstance(v, str) and bool(re.fullmatch(r"[0-9a-f]{64}", v))),
    "provider": _one_of("cpu", "cuda", "tensorrt", "openvino"),  # runtime.providers.PROVIDERS
    "backend": _one_of("onnxruntime", OPENVINO_RUNTIME),
    "precision": _one_of("fp32", "bf16", "fp16", "int8"),
    "batch_size": _int(1, MAX_BATCH),
    "source_model": _text(),
    "created": _text(),
    "toolkit_version": _text(),
}
_MEASURED: dict[str, _Kind] = {
    "p50_ms": _number(), "p99_ms": _number(), "images_per_s": _number(), "speedup_vs_reference": _number(),
    "max_rel_error": _number(), "accuracy": _number(0.0, 1.0), "synthetic_calibration": _BOOL, "candidate": _text(),
}
_MACHINE: dict[str, _Kind] = {
    "cpu": _text(optional=True),
    "isa": _Kind("a list of strings", lambda v: isinstance(v, list) and all(_text().test(x) for x in v)),
    "gpu": _text(optional=True),
}
# tune --mode throughput: instances x threads per instance for a service, and what it measured.
_SERVING: dict[str, _Kind] = {
    "mode": _one_of("throughput"), "instances": _int(1, 256), "threads": _int(1, MAX_THREADS),
    "images_per_s": _number(), "p50_ms": _number(), "p99_ms": _number(), "max_p99_ms": _number(), "candidate": _text(),
}
_REQUIRED = ("model", "model_sha256", "provider", "backend", "precision", "batch_size", "session",
             "measured", "machine")


def _refuse(path: str | Path, name: str, kind: _Kind, value: Any) -> ProfileError:
    shown = json.dumps(value)[:60] if json_depth(value) < 2 else type(value).__name__
    return ProfileError(f"{path}: field {name!r} must be {kind.expected}, received {shown}")


def _check_fields(values: Mapping[str, Any], kinds: Mapping[str, _Kind], path: str | Path, prefix: str, *,
                  others: _Kind | None = None) -> None:
    """Every value of a kind; a key of no kind is refused by name unless ``others`` describes it."""
    for key, value in values.items():
        name = f"{prefix}{key}"
        kind = kinds.get(key, others)
        if kind is None:
            raise ProfileError(f"{path}: field {name!r} is not one a profile may set; allowed: {', '.join(kinds)}")
        if not kind.test(value):
            raise _refuse(path, name, kind, value)


def check_session(session: Mapping[str, Any], path: str | Path = "profile") -> None:
    """Refuse a ``session`` that holds anything but :data:`SESSION_FIELDS` of their types."""
    if not isinstance(session, dict):
        raise ProfileError(f"{path}: field 'session' must be an object, received {type(session).__name__}")
    _check_fields(session, SESSION_FIELDS, path, "session.")


def _check_table(name: str, value: Any, kinds: Mapping[str, _Kind], path: str | Path) -> None:
    """A flat object: the known keys of their kinds, any other key a scalar."""
    if not isinstance(value, dict):
        raise ProfileError(f"{path}: field {name!r} must be an object, received {type(value).__name__}")
    _check_fields(value, kinds, path, f"{name}.", others=_SCALAR)


def check_profile_fields(data: Mapping[str, Any], known: set[str], path: str | Path = "profile") -> None:
    """Every field of a profile's JSON of its type and in its range; a key not in ``known`` (the
    profile's fields) refused by name."""
    for key in data:
        if key not in known:
            raise ProfileError(f"{path}: field {key!r} is not a profile field")
    for key in _REQUIRED:
        if key not in data:
            raise ProfileError(f"{path}: field {key!r} is missing")
    _check_fields({k: v for k, v in data.items() if k in _FIELDS}, _FIELDS, path, "")
    check_session(data["session"], path)
    _check_table("measured", data["measured"], _MEASURED, path)
    _check_table("machine", data["machine"], _MACHINE, path)
    if "serving" in data:
        _check_table("serving", data["serving"], _SERVING, path)
        unknown = sorted(set(data["serving"]) - set(_SERVING))
        if unknown:
            raise ProfileError(f"{path}: field 'serving.{unknown[0]}' is not one a profile may set; "
                               f"allowed: {', '.join(_SERVING)}")
        layout, session = data["serving"], data["session"]
        if layout and layout.get("threads") != session.get("threads"):  # the layout's threads are the session's
            raise ProfileError(f"{path}: field 'serving.threads' ({layout.get('threads')!r}) "
                               f"differs from 'session.threads' ({session.get('threads')!r}); tune writes them equal")
    candidates = data.get("candidates", [])
    if not isinstance(candidates, list) or len(candidates) > MAX_CANDIDATES:
        raise ProfileError(f"{path}: field 'candidates' must be a list of at most {MAX_CANDIDATES} objects")
    for i, row in enumerate(candidates):
        _check_table(f"candidates[{i}]", row, {}, path)
