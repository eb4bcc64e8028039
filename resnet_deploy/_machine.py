"""This machine as a tuned configuration depends on it: CPU model, ISA features, GPU.

Torch-free and free of the runtime (the deployment profile reads it while a Predictor is built).
"""

from __future__ import annotations

import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["ISA_FEATURES", "cpu_flags", "cpu_model", "gpu_name", "machine"]

ISA_FEATURES = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16")


def cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_name() -> str | None:
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


def machine() -> dict[str, Any]:
    """What a tuned configuration depends on: the CPU model, its INT8/BF16-relevant features,
    the GPU. A deployment profile records it and is refused on a machine that differs."""
    flags = cpu_flags()
    return {"cpu": cpu_model(), "isa": [f for f in ISA_FEATURES if f in flags], "gpu": gpu_name()}
