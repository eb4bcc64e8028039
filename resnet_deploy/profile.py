"""Deployment profiles: what ``resnet-deploy tune`` chose for one model on one machine.

A profile is a JSON file naming the model file to run (by path and SHA-256), the provider and
session options, the precision, the batch size it was tuned for, what was measured, and the
machine it was measured on. :meth:`Predictor.from_profile`, ``predict --profile`` and ``triton
--profile`` read it through :func:`load_profile`, which refuses a profile that is missing,
corrupt, of another format, for a model file that changed, or from another machine: a tuned
choice is a measurement, and it does not carry over to a different CPU or GPU.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._atomic import atomic_write_bytes
from ._hashing import file_sha256
from ._errors import InputError

__all__ = ["DeploymentProfile", "ProfileError", "load_profile", "save_profile", "file_sha256", "FORMAT", "VERSION"]

FORMAT = "resnet-deploy deployment profile"
VERSION = 1


class ProfileError(InputError):
    """A deployment profile that cannot be used here."""


@dataclass(frozen=True)
class DeploymentProfile:
    """The winner of a tune run, and enough context to check it still applies."""

    model: str  # the ONNX file to run: relative to the profile's folder, or absolute
    model_sha256: str
    provider: str
    backend: str  # "onnxruntime" or "openvino-runtime"
    precision: str
    batch_size: int
    session: dict[str, Any]  # SessionConfig fields other than the provider
    measured: dict[str, Any]  # p50_ms, p99_ms, images_per_s, max_rel_error, accuracy, ...
    machine: dict[str, Any]  # resnet_deploy.environment.machine()
    source_model: str = ""
    candidates: list[dict[str, Any]] = field(default_factory=list)
    created: str = ""
    toolkit_version: str = ""

    def model_path(self, profile_path: str | Path) -> Path:
        path = Path(self.model)
        return path if path.is_absolute() else Path(profile_path).resolve().parent / path


def save_profile(profile: DeploymentProfile, path: str | Path) -> None:
    payload = {"format": FORMAT, "version": VERSION, **dataclasses.asdict(profile)}
    atomic_write_bytes(path, (json.dumps(payload, indent=2, allow_nan=False) + "\n").encode())


_REQUIRED: dict[str, type | tuple[type, ...]] = {
    "model": str, "model_sha256": str, "provider": str, "backend": str, "precision": str, "batch_size": int,
    "session": dict, "measured": dict, "machine": dict,
}


def load_profile(path: str | Path, *, check_machine: bool = True, check_model: bool = True) -> DeploymentProfile:
    """Read and check a profile; every refusal is one :class:`ProfileError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ProfileError(f"profile not found: {path}")
    try:
        data = json.loads(path.read_text())
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProfileError(f"{path} is not a deployment profile: not valid JSON ({exc.__class__.__name__})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ProfileError(f"{path} is not a deployment profile (write one with resnet-deploy tune)")
    if data.get("version") != VERSION:
        raise ProfileError(f"{path} is a version {data.get('version')!r} profile; this toolkit reads version {VERSION}")
    for key, kind in _REQUIRED.items():
        if not isinstance(data.get(key), kind) or (isinstance(data.get(key), bool) and kind is int):
            raise ProfileError(f"{path}: field {key!r} is missing or not a {getattr(kind, '__name__', kind)}")
    known = {f.name for f in dataclasses.fields(DeploymentProfile)}
    profile = DeploymentProfile(**{k: v for k, v in data.items() if k in known})
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
        model = profile.model_path(path)
        if not model.is_file():
            raise ProfileError(f"{path}: its model file is missing: {model}")
        if file_sha256(model) != profile.model_sha256:
            raise ProfileError(f"{path}: its model file {model.name} changed since it was tuned (SHA-256 differs)")
    return profile
