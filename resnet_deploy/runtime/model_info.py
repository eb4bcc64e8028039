"""What a model file says about itself, for a Predictor: its class names (validated against the
output) and the warnings a newcomer needs (no preprocessing metadata, random weights, INT8 made
for a CPU class this machine is not of, nodes an accelerator left on the CPU)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from .._errors import OnnxModelError
from .._machine import INT8_KERNELS, cpu_model, int8_kernels
from ..preprocess.images import PREPROCESSING_KEYS
from ..preprocess.labels import imagenet_labels
from .providers import PROVIDERS

__all__ = ["class_names", "int8_kernels_warning", "warn_about_model"]


def class_names(metadata: dict[str, Any], width: Any, source: Path) -> list[str] | None:
    """The class names: the metadata's, validated against the output width, else ImageNet's
    for a 1000-class model."""
    classes = metadata.get("num_classes")
    if classes is not None:
        if isinstance(classes, bool) or not isinstance(classes, int) or classes < 1:
            raise OnnxModelError(f"{source}: metadata 'num_classes' must be a positive integer, received {classes!r}")
        if isinstance(width, int) and classes != width:
            raise OnnxModelError(f"{source}: metadata 'num_classes' is {classes} but the output has {width} classes")
    labels = metadata.get("labels")
    if labels is not None:
        if not isinstance(labels, list) or not labels or not all(isinstance(x, (str, int, float)) for x in labels):
            raise OnnxModelError(f"{source}: metadata 'labels' must be a non-empty list of names")
        expected = width if isinstance(width, int) else classes
        if expected is not None and len(labels) != expected:
            raise OnnxModelError(f"{source}: metadata 'labels' has {len(labels)} names for {expected} classes")
        return [str(x) for x in labels]
    if (classes if classes is not None else width) == 1000:
        return imagenet_labels()
    return None


def int8_kernels_warning(metadata: dict[str, Any], name: str) -> str | None:
    """The one line to warn with when the file's INT8 needs kernels this CPU lacks (metadata
    ``int8_kernels: vnni``, from ``quantize --target-cpu``, on a CPU without VNNI), else None.
    Predictor, bench and tune read it: without VNNI, U8S8 made for it saturates in int16 and
    loses accuracy (4 points on the digits model, docs/performance.md)."""
    needs = metadata.get("int8_kernels")
    if needs is None or needs == "any":
        return None
    if needs not in INT8_KERNELS:
        return (f"{name}: metadata 'int8_kernels' is {needs!r}, which this version does not know (expected "
                f"{' or '.join(INT8_KERNELS)}): whether its INT8 holds on this CPU is unknown")
    if int8_kernels() == "vnni":
        return None
    return (f"{name} is INT8 made for CPUs with VNNI (int8_kernels: vnni) and this CPU ({cpu_model()}) has none: "
            "its accuracy may drop here; re-quantize it with --target-cpu any, or measure it with bench --eval-data")


def warn_about_model(p: Any, *, stacklevel: int) -> None:
    """One warning each for what a newcomer must know about the file: no preprocessing metadata
    (ImageNet's is assumed), random weights, INT8 made for kernels this CPU lacks (on the CPU and
    OpenVINO providers: a GPU runs its own), nodes an accelerator left on the CPU."""
    if not any(key in p.metadata for key in PREPROCESSING_KEYS):
        warnings.warn(
            f"{p.model_path.name} has no preprocessing metadata ({', '.join(PREPROCESSING_KEYS)}): "
            "using ImageNet's "
            f"(resize {p.preprocessing.resize_size}, crop {p.preprocessing.crop_size}, ImageNet mean/std)"
            + (" and ImageNet's labels" if p.labels is not None and "labels" not in p.metadata else ""),
            UserWarning,
            stacklevel=stacklevel,
        )
    if str(p.metadata.get("weights", "")).startswith("random init"):  # export without --weights records this
        warnings.warn(
            f"{p.model_path.name} holds the seeded random initialisation, not trained weights: its answers mean "
            "nothing (export it with --weights CHECKPOINT; the README's quickstart shows how)",
            UserWarning,
            stacklevel=stacklevel,
        )
    kernels = int8_kernels_warning(p.metadata, p.model_path.name) if p.provider in ("cpu", "openvino") else None
    if kernels is not None:
        warnings.warn(kernels, UserWarning, stacklevel=stacklevel)
    if p.placement is not None and p.provider != "cpu":
        on_cpu = p.placement.get(PROVIDERS["cpu"], 0)
        if on_cpu:
            warnings.warn(
                f"{on_cpu} of {sum(p.placement.values())} nodes of {p.model_path.name} run on "
                f"{PROVIDERS['cpu']}, not {PROVIDERS[p.provider]}",
                RuntimeWarning,
                stacklevel=stacklevel,
            )
