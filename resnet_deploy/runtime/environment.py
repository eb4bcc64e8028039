"""What machine a benchmark ran on: CPU, instruction-set features, GPU, library versions."""

from __future__ import annotations

import importlib.metadata
import platform
from typing import Any

from .._machine import ISA_FEATURES, cpu_flags, cpu_model, gpu_name, machine
from . import available_providers, cpu_count

__all__ = ["cpu_flags", "environment", "machine", "ISA_FEATURES"]

_PACKAGES = ("torch", "onnxruntime", "onnxruntime-gpu", "onnx", "onnxsim", "onnxscript", "onnxruntime-ep-openvino",
             "openvino", "numpy")


def environment(threads: int | None = None) -> dict[str, Any]:
    flags = cpu_flags()
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return {
        "cpu": cpu_model(),
        "cores": cpu_count(),
        "threads": threads or cpu_count(),
        "isa": {f: f in flags for f in ISA_FEATURES},
        "gpu": gpu_name(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
        "providers": available_providers(),
    }
