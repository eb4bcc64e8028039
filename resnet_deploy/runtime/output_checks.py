"""What a Predictor checks in a model's answer for a list of images before it reads it: one row per
image, of the kind the model outputs (logits or an embedding), and every number finite."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from .._errors import NonFiniteOutputError, OnnxModelError
from ..preprocess.images import ImageLike

__all__ = ["check_outputs"]


def check_outputs(out: np.ndarray, images: Sequence[ImageLike], *, model_path: Path, output_name: str,
                  output_kind: str) -> None:
    """Refuse ``out`` unless it is ``[N, width]`` for the N ``images``, of finite numbers only."""
    if out.ndim != 2 or out.shape[0] != len(images):
        wanted = ("an embedding [N, size]" if output_kind == "embedding"
                  else "classifying needs logits [N, classes]")
        raise OnnxModelError(f"{model_path}: output {output_name!r} has shape {list(out.shape)}; "
                             f"{wanted} for N = {len(images)} images")
    _check_finite(out, images, model_path, output_kind)


def _check_finite(logits: np.ndarray, images: Sequence[ImageLike], model_path: Path, output_kind: str) -> None:
    """NaN or Inf logits are no answer (every score would be NaN): refuse them, naming the
    model and the images."""
    bad = np.flatnonzero(~np.isfinite(logits).all(axis=1))
    if bad.size:
        names = ", ".join(str(images[i]) if isinstance(images[i], (str, Path)) else f"image #{i}" for i in bad[:3])
        more = f" and {bad.size - 3} more" if bad.size > 3 else ""
        raise NonFiniteOutputError(
            f"{model_path} computed non-finite "
            f"{'embeddings' if output_kind == 'embedding' else 'logits'} (NaN or Inf) "
            f"for {bad.size} of {len(logits)} images ({names}{more}): the model's weights or the input are broken"
        )
