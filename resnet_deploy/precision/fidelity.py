"""How close INT8's outputs stay to fp32's, in the measure that fits what the file outputs.

A classifier's logits are judged by top-1 agreement (and the max relative error every stage
reports); a features file (``export --features``, output ``embedding``) has no classes, so its
argmax means nothing: its embeddings are judged by their cosine similarity to fp32's, the
measure a nearest-neighbour search or a retrieval index ranks by (min and mean over the samples).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx

from ..graph.embedding import is_features_file
from ..graph.io import read_metadata
from ..graph.verify import compare

__all__ = ["Fidelity", "fidelity", "outputs_embeddings"]


@dataclass(frozen=True)
class Fidelity:
    """INT8 against fp32 on the same inputs: ``top1_agreement`` for logits, the cosine
    similarities for embeddings (the other measure None)."""

    max_rel_error: float
    top1_agreement: float | None
    cosine_min: float | None = None
    cosine_mean: float | None = None

    def describe(self) -> str:
        if self.top1_agreement is None:
            return (f"cosine similarity to fp32 min {self.cosine_min:.6f}, mean {self.cosine_mean:.6f}, "
                    f"max rel error {self.max_rel_error:.2e}")
        return f"top-1 agreement with fp32 {self.top1_agreement:.1%}, max rel error {self.max_rel_error:.2e}"


def outputs_embeddings(model: onnx.ModelProto) -> bool:
    """Whether ``model`` is a features file: its metadata says its output is an embedding."""
    return is_features_file(read_metadata(model))


def fidelity(candidate: np.ndarray, reference: np.ndarray, *, embeddings: bool) -> Fidelity:
    """``candidate`` (INT8's outputs) against ``reference`` (fp32's), one row per sample."""
    parity = compare(candidate, reference, rtol=1.0)
    if not embeddings:
        return Fidelity(parity.max_rel_error, parity.top1_agreement)
    a, b = np.asarray(candidate, np.float64), np.asarray(reference, np.float64)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    # Two zero vectors are the same embedding; one zero vector against another is orthogonal.
    cosine = np.where(norms > 0, np.sum(a * b, axis=1) / np.where(norms > 0, norms, 1.0),
                      np.all(a == b, axis=1).astype(np.float64))
    return Fidelity(parity.max_rel_error, None, float(cosine.min()), float(cosine.mean()))
