"""Run a process as on an AVX2-only CPU (no AVX-512, no VNNI, no AMX), on any x86 Linux machine
with CPUID faulting: onnxruntime and OpenVINO then choose the integer kernels of that class, the
ones that saturate U8S8 in int16 (tests/_avx2_only.c says how).

    python -m tests._avx2_only python -m pytest tests/diagnostics/test_compare.py

builds the preload library with the C compiler and runs the command under it; ``avx2_env()``
gives the environment for a subprocess, ``unavailable()`` why it cannot be made here (or None).
CI sets ``RESNET_DEPLOY_REQUIRE_AVX2_ONLY=1`` where the machine can: the tests then fail rather
than skip.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import tempfile
from functools import lru_cache
from pathlib import Path

SOURCE = Path(__file__).with_name("_avx2_only.c")
REQUIRE_ENV = "RESNET_DEPLOY_REQUIRE_AVX2_ONLY"


def unavailable() -> str | None:
    """Why the AVX2-only view cannot be made on this machine, or None."""
    if sys.platform != "linux" or platform.machine() not in ("x86_64", "AMD64"):
        return f"CPUID faulting is x86 Linux's; this is {sys.platform} {platform.machine()}"
    try:
        flags = next((line for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("flags")), "").split()
    except OSError as exc:
        return f"/proc/cpuinfo unreadable: {exc}"
    if "cpuid_fault" not in flags:
        return "this CPU (or its hypervisor) has no CPUID faulting (cpuid_fault in /proc/cpuinfo)"
    if shutil.which(os.environ.get("CC", "cc")) is None:
        return "no C compiler (cc) to build tests/_avx2_only.c"
    return None


@lru_cache(maxsize=1)
def library() -> Path:
    """The preload library, built once per process into a temporary folder."""
    folder = Path(tempfile.mkdtemp(prefix="resnet-deploy-avx2-only-"))
    out = folder / "avx2_only.so"
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}  # (built as the machine is)
    subprocess.run([os.environ.get("CC", "cc"), "-O2", "-Wall", "-shared", "-fPIC",
                    "-o", str(out), str(SOURCE), "-ldl"],
                   check=True, capture_output=True, text=True, timeout=120, env=env)
    return out


def avx2_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this process's environment) with the library preloaded."""
    env = dict(os.environ if base is None else base)
    env["LD_PRELOAD"] = " ".join(filter(None, [str(library()), env.get("LD_PRELOAD", "")]))
    return env


def main(argv: list[str]) -> int:
    why = unavailable()
    if why is not None:
        print(f"cannot run AVX2-only here: {why}", file=sys.stderr)
        return 2
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    return subprocess.run(argv, env=avx2_env()).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
