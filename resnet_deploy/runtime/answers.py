"""What a classifier's logits say: the top-k classes of each image, with their softmax scores and
names (:class:`Prediction`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Prediction", "ranked"]


@dataclass(frozen=True)
class Prediction:
    index: int
    label: str
    score: float


def ranked(logits: np.ndarray, labels: list[str] | None, top_k: int) -> list[list[Prediction]]:
    """Per row of ``logits`` ``[N, classes]``, the ``top_k`` classes by softmax probability
    (ties in index order), named by ``labels`` or by their index."""
    logits = logits.astype(np.float64)
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    k = min(top_k, probs.shape[1])
    results = []
    for row in probs:
        top = np.argsort(-row, kind="stable")[:k]
        results.append([Prediction(int(i), labels[i] if labels else str(int(i)), float(row[i])) for i in top])
    return results
