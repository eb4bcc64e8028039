"""What a classifier's logits say: the top-k classes of each image, with their softmax scores and
names (:class:`Prediction`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Prediction", "ranked", "top_classes"]


@dataclass(frozen=True)
class Prediction:
    index: int
    label: str
    score: float


def top_classes(logits: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``logits`` ``[N, classes]``, the ``k`` most probable classes (int64, ties in
    index order) and their softmax probabilities (float64): the arrays behind :func:`ranked`,
    for callers that store them (``resnet-deploy batch``)."""
    x = logits.astype(np.float64)
    probs = np.exp(x - x.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    top = np.argsort(-probs, axis=1, kind="stable")[:, : min(k, probs.shape[1])]
    return top.astype(np.int64), np.take_along_axis(probs, top, axis=1)


def ranked(logits: np.ndarray, labels: list[str] | None, top_k: int) -> list[list[Prediction]]:
    """Per row of ``logits`` ``[N, classes]``, the ``top_k`` classes by softmax probability
    (ties in index order), named by ``labels`` or by their index."""
    indices, scores = top_classes(logits, top_k)
    return [[Prediction(int(i), labels[i] if labels else str(int(i)), float(p)) for i, p in zip(row, row_scores)]
            for row, row_scores in zip(indices, scores)]
