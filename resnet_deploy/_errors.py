"""Typed errors. Every failure a user can cause is one of these; the CLI prints them as one line."""

from __future__ import annotations

import re

__all__ = [
    "ResnetDeployError",
    "ModelNotFoundError",
    "WeightsError",
    "ExportError",
    "VerificationError",
    "OnnxModelError",
    "RuntimeBackendError",
    "ProviderUnavailableError",
    "InputError",
    "OutputPathError",
    "NonFiniteOutputError",
]


# OpenVINO puts where it raised before why, one line per frame: "Exception from
# src/inference/src/cpp/core.cpp:105:" and "Check '...' failed at src/...:151:". Those name no
# reason; the lines after them do (also when onnxruntime's OpenVINO EP wraps them in its own line).
_LOCATION = re.compile(r"(Exception from \S+:\d+:|Check '.*?' failed at \S+:\d+:)")


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first line of an exception's message (native libraries write pages), or its type.

    A message holding OpenVINO's source locations keeps its reason: the locations are dropped
    and the lines joined (OpenVINO's reason spans a few short lines after them)."""
    text = str(exc).strip()
    if _LOCATION.search(text):
        text = " ".join(part for part in (_LOCATION.sub("", line).strip() for line in text.splitlines()) if part)
    else:
        text = text.splitlines()[0].strip() if text else ""
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return text or type(exc).__name__


class ResnetDeployError(Exception):
    """Base class of every error this toolkit raises on purpose."""


class ModelNotFoundError(ResnetDeployError, KeyError):
    """An unknown model name or depth."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain.
        return str(self.args[0]) if self.args else ""


class WeightsError(ResnetDeployError):
    """A checkpoint that cannot be read, is unsafe, or does not match the model."""


class ExportError(ResnetDeployError):
    """torch.onnx failed to produce a valid graph."""


class VerificationError(ResnetDeployError):
    """A transformed model disagrees with its source beyond the tolerance."""


class OnnxModelError(ResnetDeployError):
    """An ONNX file that is missing, corrupt, unsafe or not what a command expects."""


class RuntimeBackendError(ResnetDeployError):
    """onnxruntime could not create or run a session."""


class ProviderUnavailableError(RuntimeBackendError):
    """An execution provider asked for by name is not available on this machine."""


class InputError(ResnetDeployError):
    """Bad input data: an image that is not an image, a batch of the wrong shape or dtype."""


class OutputPathError(ResnetDeployError):
    """An output path that cannot be written."""


class NonFiniteOutputError(RuntimeBackendError):
    """A model that computed NaN or Inf: an answer that is no answer (broken weights or input)."""
