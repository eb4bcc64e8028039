"""What ``bundle --web`` may choose, its checks, and what a written bundle is."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..._errors import InputError

__all__ = ["WebBundleOptions", "WebBundle", "check_options", "MAX_THREADS"]

MAX_THREADS = 64


@dataclass(frozen=True)
class WebBundleOptions:
    """What ``bundle --web`` may choose.

    Args:
        int8: quantize the classifier to INT8 QDQ (calibrated on ``calibration``); the
            preprocessing in front of it stays float.
        calibration: a folder of images (or a .npy of preprocessed inputs) for ``int8``.
        ort_format: ship onnxruntime's ORT format with its graph optimizations applied offline
            (level ``extended``: fusions that every CPU runs, no layout of one CPU's own), so the
            page loads it without optimizing again.
        threads: WebAssembly threads the page uses; 0 lets the page choose (every core when it is
            cross-origin isolated, else 1).
        node_modules: where ``onnxruntime-web`` is installed (default: examples/web/node_modules).
        page: the folder of the page's own files (default: the package's, resnet_deploy/data/web).
        force: replace an existing output folder.
    """

    int8: bool = False
    calibration: Path | None = None
    ort_format: bool = False
    threads: int = 0
    node_modules: Path | None = None
    page: Path | None = None
    force: bool = False


@dataclass(frozen=True)
class WebBundle:
    """A bundle written: its folder, the model file in it, what model.json says, and notes."""

    folder: Path
    model: Path
    config: dict[str, Any]
    size: int  # bytes of every file in the folder
    notes: tuple[str, ...] = field(default_factory=tuple)


def check_options(options: WebBundleOptions) -> None:
    """Refuse options that contradict each other or are out of range, naming the option."""
    if options.int8 and options.calibration is None:
        raise InputError("--int8 needs --calibration: images (or a .npy) to calibrate the INT8 classifier on")
    if options.calibration is not None and not options.int8:
        raise InputError("--calibration is for --int8; drop it, or add --int8")
    if not 0 <= options.threads <= MAX_THREADS:
        raise InputError(f"threads must be 0 (the page chooses) to {MAX_THREADS}, received {options.threads}")
