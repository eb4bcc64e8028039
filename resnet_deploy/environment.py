"""What machine a benchmark ran on: CPU, instruction-set features, GPU, library versions."""

from __future__ import annotations

import importlib.metadata
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from .runtime import available_providers, cpu_count

__all__ = ["cpu_flags", "environment", "ISA_FEATURES"]

ISA_FEATURES = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16")
_PACKAGES = ("torch", "onnxruntime", "onnxruntime-gpu", "onnx", "onnxsim", "onnxscript", "onnxruntime-ep-openvino", "numpy")


def cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _gpu() -> str | None:
    """The first GPU's name: from torch only when the process has already imported it (a record
    of an onnxruntime-only run must not pull in PyTorch), else from ``nvidia-smi``, else None."""
    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            if torch.cuda.is_available():
                return torch.cuda.get_device_name(0)
        except Exception:  # a broken CUDA install must not break the benchmark's bookkeeping
            return None
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        out = subprocess.run([smi, "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    names = [line.strip() for line in out.stdout.splitlines() if line.strip()]
    return names[0] if names else None


def environment(threads: int | None = None) -> dict[str, Any]:
    flags = cpu_flags()
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return {
        "cpu": _cpu_model(),
        "cores": cpu_count(),
        "threads": threads or cpu_count(),
        "isa": {f: f in flags for f in ISA_FEATURES},
        "gpu": _gpu(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
        "providers": available_providers(),
    }
