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
name before any of it is used. Read, its ``session`` is the frozen
:class:`~resnet_deploy.profile.session.SessionConfig` a Predictor opens, and its ``serving`` the
:class:`ServingLayout` a Triton entry runs: no dict of loose keys reaches the code that deploys.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from .._atomic import atomic_write_bytes
from .._hashing import file_sha256
from .._json import finite_or_none, loads_with_depth
from ..graph.io import model_sha256
from .session import SessionConfig
from .schema import (  # noqa: F401 - the schema's names, importable from here as before
    MAX_DEPTH, MAX_PROFILE_BYTES, SESSION_FIELDS, ProfileError, check_profile_fields, check_session,
)

if TYPE_CHECKING:
    import onnx

__all__ = ["DeploymentProfile", "ServingLayout", "ProfileError", "load_profile", "load_profile_model", "save_profile",
           "check_session", "file_sha256", "model_sha256", "SESSION_FIELDS", "FORMAT", "VERSION", "MAX_PROFILE_BYTES"]

FORMAT = "resnet-deploy deployment profile"
VERSION = 1
# A profile is a few kilobytes (its candidates table included); a file larger than this is not
# one, and is refused before it is read whole.
@dataclass(frozen=True)
class ServingLayout:
    """``tune --mode throughput``: the layout a service runs (``instances`` sessions of
    ``threads`` threads each), and what it measured."""

    instances: int
    threads: int
    images_per_s: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    max_p99_ms: float | None = None  # the bound it was chosen under
    candidate: str = ""  # the engine measured
    mode: str = "throughput"


@dataclass(frozen=True)
class DeploymentProfile:
    """The winner of a tune run, and enough context to check it still applies.

    ``session`` may be given as the JSON's object of :data:`SESSION_FIELDS` (it becomes the
    :class:`SessionConfig` for ``provider``) and ``serving`` as its object (``{}``: none)."""

    model: str  # the ONNX file to run: relative to the profile's folder, or absolute
    model_sha256: str  # resnet_deploy.graph.io.model_sha256: the file and its external data
    provider: str
    backend: str  # "onnxruntime" or "openvino-runtime"
    precision: str
    batch_size: int
    session: SessionConfig  # for ``provider``; only SESSION_FIELDS differ from the defaults
    measured: dict[str, Any]  # p50_ms, p99_ms, images_per_s, max_rel_error, accuracy, ...
    machine: dict[str, Any]  # resnet_deploy.runtime.environment.machine()
    source_model: str = ""
    candidates: list[dict[str, Any]] = field(default_factory=list)
    created: str = ""
    toolkit_version: str = ""
    serving: ServingLayout | None = None  # tune --mode throughput: the layout chosen

    def __post_init__(self) -> None:
        if isinstance(self.session, Mapping):
            check_session(dict(self.session))
            object.__setattr__(self, "session", SessionConfig(provider=self.provider, **self.session))
        if self.session.provider != self.provider:
            raise ValueError(f"the session's provider {self.session.provider!r} is not the profile's {self.provider!r}")
        if isinstance(self.serving, Mapping):
            object.__setattr__(self, "serving", ServingLayout(**self.serving) if self.serving else None)

    @property
    def engine(self) -> str:
        """The catalogue's name of the configuration tune chose (``ov-bf16``, ``ort-fp32``, ...)."""
        candidate = self.measured.get("candidate")
        return candidate if isinstance(candidate, str) and candidate else f"{self.provider}-{self.precision}"

    def model_path(self, profile_path: str | Path) -> Path:
        path = Path(self.model)
        return path if path.is_absolute() else Path(profile_path).resolve().parent / path

    def to_json(self) -> dict[str, Any]:
        """The profile as its JSON object: ``session`` as the fields that differ from the defaults."""
        payload = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        default = SessionConfig(provider=self.provider)
        payload["session"] = {f.name: getattr(self.session, f.name) for f in dataclasses.fields(SessionConfig)
                              if getattr(self.session, f.name) != getattr(default, f.name)}
        payload["serving"] = dataclasses.asdict(self.serving) if self.serving else {}
        return {"format": FORMAT, "version": VERSION, **payload}


_KNOWN = {f.name for f in dataclasses.fields(DeploymentProfile)} | {"format", "version"}


# -- reading and writing -----------------------------------------------------------------------

def save_profile(profile: DeploymentProfile, path: str | Path, *, replace: bool = True) -> None:
    """Write ``profile`` atomically, after checking it against the schema :func:`load_profile`
    applies (a profile we cannot read back is never written). With ``replace=False`` an existing
    file at ``path`` is refused, never overwritten."""
    # A measurement without a finite value (a candidate that computed NaN) is null, as in every JSON we write.
    payload = finite_or_none(profile.to_json())
    check_profile_fields(payload, _KNOWN, path)
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
        data, depth = loads_with_depth(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProfileError(f"{path} is not a deployment profile: not valid JSON ({exc.__class__.__name__})") from None
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
        raise ProfileError(f"{path} is a version {json.dumps(data.get('version'))[:20]} profile; "
                           f"this toolkit reads version {VERSION}")
    check_profile_fields(data, _KNOWN, path)
    profile = DeploymentProfile(**{k: v for k, v in data.items() if k not in ("format", "version")})
    if check_machine:
        from .._machine import machine

        here = machine()
        for key in ("cpu", "isa", "gpu"):
            if profile.machine.get(key) != here.get(key):
                raise ProfileError(
                    f"{path} was tuned on another machine "
                    f"({key}: {profile.machine.get(key)!r}; here: {here.get(key)!r}); "
                    "run resnet-deploy tune on this one"
                )
    if check_model:
        load_profile_model(profile, path)
    return profile


def load_profile_model(profile: DeploymentProfile, path: str | Path) -> onnx.ModelProto:
    """The profile's model, read once: the bytes hashed (the model file and its external data)
    are the bytes parsed and returned, so what runs is exactly what was tuned."""
    from .._errors import OnnxModelError
    from ..graph.io import load_onnx_hashed

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
