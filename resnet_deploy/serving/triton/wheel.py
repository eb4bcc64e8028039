"""What the ``nvidia-pytriton`` wheel ships of Triton, and the backend folder a server needs.

The wheel holds ``tritonserver/bin/tritonserver``, the Python backend's library and one stub per
Python version; its shared libraries sit in auditwheel's ``nvidia_pytriton.libs`` beside it.
"""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
from pathlib import Path

from .process import TritonServerError

__all__ = ["find_tritonserver", "library_path", "backend_folder"]


def find_tritonserver() -> Path:
    """The folder of the pip wheel's Triton (``bin/tritonserver``, ``backends/python``)."""
    try:
        import pytriton  # type: ignore[import-not-found]
    except ImportError:
        raise TritonServerError("Triton's server is not installed: pip install 'resnet-deploy[serve]' "
                                "in an environment of its own (it pins numpy<2)") from None
    root = Path(pytriton.__file__).parent / "tritonserver"
    if not (root / "bin" / "tritonserver").is_file():
        raise TritonServerError(f"nvidia-pytriton has no tritonserver binary under {root}")
    return root


def library_path(root: Path) -> str:
    libs = root.parent.parent / "nvidia_pytriton.libs"  # auditwheel's folder beside the package
    parts = [str(libs), str(sysconfig.get_config_var("LIBDIR") or ""), os.environ.get("LD_LIBRARY_PATH", "")]
    return ":".join(p for p in parts if p)


def backend_folder(root: Path, folder: Path, extra: dict[str, Path]) -> None:
    """``folder/python``: the Python backend's library and the stub for this interpreter, copied
    (Triton refuses links that leave the folder); and each extra Python-based backend by name."""
    python = folder / "python"
    python.mkdir(parents=True)
    for name in ("libtriton_python.so", "triton_python_backend_utils.py"):
        shutil.copy2(root / "backends" / "python" / name, python / name)
    stub = (root / "python_backend_stubs" / f"{sys.version_info.major}.{sys.version_info.minor}"
            / "triton_python_backend_stub")
    if not stub.is_file():
        raise TritonServerError(f"nvidia-pytriton has no Python backend stub for Python {sys.version_info.major}."
                                f"{sys.version_info.minor}")
    shutil.copy2(stub, python / stub.name)
    for name, source in extra.items():
        shutil.copytree(source, folder / name)
