"""onnxruntime's ORT format, with its graph optimizations applied offline, checked against the
ONNX file it was made from."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..._errors import ResnetDeployError, VerificationError
from ...image_input import IMAGE_INPUT_NAME

__all__ = ["to_ort_format", "ORT_FORMAT_RTOL", "ORT_FORMAT_RTOL_INT8"]

# The ORT-format file against the ONNX file it was made from, both on onnxruntime's CPU provider:
# the offline fusions (Conv+Add+Relu into FusedConv, QDQ into QLinearConv) reorder float sums.
ORT_FORMAT_RTOL = 1e-4
ORT_FORMAT_RTOL_INT8 = 5e-2


def to_ort_format(onnx_path: Path, ort_path: Path, *, rtol: float = ORT_FORMAT_RTOL) -> tuple[Path, float]:
    """``onnx_path`` saved in onnxruntime's ORT format with the ``extended`` graph optimizations
    applied, checked against the ONNX file on the photos of
    :func:`~resnet_deploy.export.image_input.photo_variants` (the same top-1, logits within ``rtol``).

    ``extended``, not ``all``: ``all`` adds the NCHWc layout of the CPU it runs on (AVX-512 blocks
    here), which WebAssembly's kernels do not have. Returns the path and the logits' max rel error.
    """
    import onnxruntime as ort

    from ...export.image_input import photo_variants
    from ...graph.verify import compare

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    so.optimized_model_filepath = str(ort_path)
    so.add_session_config_entry("session.save_model_format", "ORT")
    try:
        ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own types, and RuntimeError for file errors
        raise ResnetDeployError(f"onnxruntime could not write the ORT format: {str(exc).splitlines()[0]}") from exc
    plain = ort.SessionOptions()
    plain.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    reference = ort.InferenceSession(str(onnx_path), plain, providers=["CPUExecutionProvider"])
    candidate = ort.InferenceSession(str(ort_path), plain, providers=["CPUExecutionProvider"])
    worst = 0.0
    for name, photo in photo_variants()[:4]:
        pixels = np.asarray(photo, dtype=np.uint8)[None]
        a = candidate.run(None, {IMAGE_INPUT_NAME: pixels})[0]
        b = reference.run(None, {IMAGE_INPUT_NAME: pixels})[0]
        parity = compare(a, b, rtol=rtol)
        worst = max(worst, parity.max_rel_error)
        if parity.top1_agreement < 1.0 or parity.max_rel_error > rtol:
            raise VerificationError(f"the ORT-format file disagrees with {onnx_path.name} on photo {name!r}: "
                                    f"max rel error {parity.max_rel_error:.2e} (tolerance {rtol:.0e}), "
                                    f"top-1 agreement {parity.top1_agreement:.0%}")
    return ort_path, worst
