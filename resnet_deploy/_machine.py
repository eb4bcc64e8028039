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

__all__ = ["ISA_FEATURES", "VNNI_FEATURES", "INT8_KERNELS", "cpu_flags", "cpu_model", "gpu_name",
           "int8_kernels", "machine"]

ISA_FEATURES = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16")
# The features with which x86 multiplies uint8 by int8 into int32 without an int16 step. Without
# them onnxruntime (MLAS) and OpenVINO (oneDNN) run U8S8 through VPMADDUBSW, which adds pairs of
# products into int16 and saturates; onnxruntime's quantization guide recommends 7-bit weights
# (reduce_range) there: https://onnxruntime.ai/docs/performance/model-optimizations/quantization.html
VNNI_FEATURES = ("avx512_vnni", "avx_vnni", "amx_int8")
# The CPU classes an INT8 file is made for (its ``int8_kernels`` metadata): ``vnni`` needs one of
# VNNI_FEATURES to keep its accuracy; ``any`` keeps it on every x86 CPU (and elsewhere).
INT8_KERNELS = ("vnni", "any")


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


def int8_kernels(flags: set[str] | None = None) -> str:
    """This machine's INT8 class: ``vnni`` when its CPU (``flags``, by default /proc/cpuinfo's)
    has one of :data:`VNNI_FEATURES`, else ``any`` (AVX2, AVX-512 without VNNI, non-x86)."""
    flags = cpu_flags() if flags is None else flags
    return "vnni" if flags & set(VNNI_FEATURES) else "any"


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
        out = subprocess.run([smi, "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True,
                             timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    names = [line.strip() for line in out.stdout.splitlines() if line.strip()]
    return names[0] if names else None


def machine() -> dict[str, Any]:
    """What a tuned configuration depends on: the CPU model, its INT8/BF16-relevant features,
    the GPU. A deployment profile records it and is refused on a machine that differs."""
    flags = cpu_flags()
    return {"cpu": cpu_model(), "isa": [f for f in ISA_FEATURES if f in flags], "gpu": gpu_name()}
