"""Deployment profiles: what ``resnet-deploy tune`` chose for one model on one machine.

A profile is a JSON file naming the model file to run (by path and digest, external data
included), the provider and session options, the precision, the batch size it was tuned for,
what was measured, and the machine it was measured on. :meth:`Predictor.from_profile`, ``predict
--profile`` and ``triton --profile`` read it through :func:`load_profile`, which refuses a
profile that is missing, corrupt, of another format, for a model file that changed, or from
another machine: a tuned choice is a measurement, and it does not carry over to a different CPU
or GPU.

A profile is data, not configuration passed through: every field has a type and a range, the
session options are an allow-list (:data:`SESSION_FIELDS`), and anything else is refused by
name before any of it is used.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from ._atomic import atomic_write_bytes
from ._errors import InputError
from ._hashing import file_sha256
from ._json import finite_or_none
from .onnx_io import json_depth, model_sha256

if TYPE_CHECKING:
    import onnx

__all__ = ["DeploymentProfile", "ProfileError", "load_profile", "load_profile_model", "save_profile", "check_session",
           "file_sha256", "model_sha256", "SESSION_FIELDS", "FORMAT", "VERSION", "MAX_PROFILE_BYTES"]

FORMAT = "resnet-deploy deployment profile"
VERSION = 1
# A profile is a few kilobytes (its candidates table included); a file larger than this is not
# one, and is refused before it is read whole.
MAX_PROFILE_BYTES = 1 << 20
MAX_DEPTH = 4  # profile -> candidates -> one candidate -> its values
MAX_CANDIDATES = 256
MAX_TEXT = 4096  # characters of any string field
MAX_BATCH = 4096  # as bench's --batch-size
MAX_THREADS = 4096  # the runtime also caps threads at 4x this machine's cores


class ProfileError(InputError):
    """A deployment profile that cannot be used here."""


@dataclass(frozen=True)
class DeploymentProfile:
    """The winner of a tune run, and enough context to check it still applies."""

    model: str  # the ONNX file to run: relative to the profile's folder, or absolute
    model_sha256: str  # resnet_deploy.onnx_io.model_sha256: the file and its external data
    provider: str
    backend: str  # "onnxruntime" or "openvino-runtime"
    precision: str
    batch_size: int
    session: dict[str, Any]  # SessionConfig fields of SESSION_FIELDS only
    measured: dict[str, Any]  # p50_ms, p99_ms, images_per_s, max_rel_error, accuracy, ...
    machine: dict[str, Any]  # resnet_deploy.environment.machine()
    source_model: str = ""
    candidates: list[dict[str, Any]] = field(default_factory=list)
    created: str = ""
    toolkit_version: str = ""
    serving: dict[str, Any] = field(default_factory=dict)  # tune --mode throughput: the layout chosen (_SERVING)

    def model_path(self, profile_path: str | Path) -> Path:
        path = Path(self.model)
        return path if path.is_absolute() else Path(profile_path).resolve().parent / path


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
}
_FIELDS: dict[str, _Kind] = {
    "model": _Kind("a non-empty string", lambda v: _text().test(v) and bool(v)),
    "model_sha256": _Kind("64 lowercase hex digits", lambda v: isinstance(v, str) and bool(re.fullmatch(r"[0-9a-f]{64}", v))),
    "provider": _one_of("cpu", "cuda", "tensorrt", "openvino"),  # runtime.providers.PROVIDERS
    "backend": _one_of("onnxruntime", "openvino-runtime"),
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
    "mode": _one_of("throughput"), "instances": _int(1, 256), "threads": _int(1, MAX_THREADS), "images_per_s": _number(),
    "p50_ms": _number(), "p99_ms": _number(), "max_p99_ms": _number(), "candidate": _text(),
}
_REQUIRED = ("model", "model_sha256", "provider", "backend", "precision", "batch_size", "session", "measured", "machine")


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


def check_profile_fields(data: Mapping[str, Any], path: str | Path = "profile") -> None:
    """Every field of a profile's JSON of its type and in its range; unknown fields refused by name."""
    known = {f.name for f in dataclasses.fields(DeploymentProfile)} | {"format", "version"}
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
            raise ProfileError(f"{path}: field 'serving.{unknown[0]}' is not one a profile may set; allowed: {', '.join(_SERVING)}")
    candidates = data.get("candidates", [])
    if not isinstance(candidates, list) or len(candidates) > MAX_CANDIDATES:
        raise ProfileError(f"{path}: field 'candidates' must be a list of at most {MAX_CANDIDATES} objects")
    for i, row in enumerate(candidates):
        _check_table(f"candidates[{i}]", row, {}, path)


# -- reading and writing -----------------------------------------------------------------------

def save_profile(profile: DeploymentProfile, path: str | Path, *, replace: bool = True) -> None:
    """Write ``profile`` atomically, after checking it against the schema :func:`load_profile`
    applies (a profile we cannot read back is never written). With ``replace=False`` an existing
    file at ``path`` is refused, never overwritten."""
    # A measurement without a finite value (a candidate that computed NaN) is null, as in every JSON we write.
    payload = finite_or_none({"format": FORMAT, "version": VERSION, **dataclasses.asdict(profile)})
    check_profile_fields(payload, path)
    atomic_write_bytes(path, (json.dumps(payload, indent=2, allow_nan=False) + "\n").encode(), replace=replace)


def _read_json(path: Path) -> Any:
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_PROFILE_BYTES + 1)
    except OSError as exc:
        raise ProfileError(f"could not read the profile {path}: {exc.strerror or exc}") from exc
    if len(raw) > MAX_PROFILE_BYTES:
        raise ProfileError(f"{path} is larger than {MAX_PROFILE_BYTES // 1024} KB: not a deployment profile")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProfileError(f"{path} is not a deployment profile: not valid JSON ({exc.__class__.__name__})") from None
    except RecursionError:
        data = None
        depth = MAX_DEPTH + 1
    else:
        depth = json_depth(data)
    if depth > MAX_DEPTH:
        raise ProfileError(f"{path} is not a deployment profile: its JSON nests more than {MAX_DEPTH} levels deep")
    return data


def load_profile(path: str | Path, *, check_machine: bool = True, check_model: bool = True) -> DeploymentProfile:
    """Read and check a profile; every refusal is one :class:`ProfileError` naming the file.

    Every field is checked against the schema (types, ranges, and for ``session`` an
    allow-list of options), before anything in it is used."""
    path = Path(path)
    if not path.is_file():
        raise ProfileError(f"profile not found: {path}")
    data = _read_json(path)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ProfileError(f"{path} is not a deployment profile (write one with resnet-deploy tune)")
    if data.get("version") != VERSION:
        raise ProfileError(f"{path} is a version {json.dumps(data.get('version'))[:20]} profile; this toolkit reads version {VERSION}")
    check_profile_fields(data, path)
    profile = DeploymentProfile(**{k: v for k, v in data.items() if k not in ("format", "version")})
    if check_machine:
        from ._machine import machine

        here = machine()
        for key in ("cpu", "isa", "gpu"):
            if profile.machine.get(key) != here.get(key):
                raise ProfileError(
                    f"{path} was tuned on another machine ({key}: {profile.machine.get(key)!r}; here: {here.get(key)!r}); "
                    "run resnet-deploy tune on this one"
                )
    if check_model:
        load_profile_model(profile, path)
    return profile


def load_profile_model(profile: DeploymentProfile, path: str | Path) -> onnx.ModelProto:
    """The profile's model, read once: the bytes hashed (the model file and its external data)
    are the bytes parsed and returned, so what runs is exactly what was tuned."""
    from ._errors import OnnxModelError
    from .onnx_io import load_onnx_hashed

    model = profile.model_path(path)
    if not model.is_file():
        raise ProfileError(f"{path}: its model file is missing: {model}")
    try:
        proto, digest = load_onnx_hashed(model)
    except OnnxModelError as exc:
        raise ProfileError(f"{path}: its model file cannot be used: {exc}") from exc
    if digest != profile.model_sha256:
        raise ProfileError(f"{path}: its model file {model.name} (or its external data) changed since it was tuned "
                           "(SHA-256 differs)")
    return proto
