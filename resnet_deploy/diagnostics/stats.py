"""Per-block statistics of a comparison: max relative error, the worst sample's cosine, and the
head's top-1 agreement, accumulated chunk by chunk (memory of one chunk, whatever the samples)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._errors import OnnxModelError

__all__ = ["BlockRow", "Running", "block_rows"]


@dataclass
class BlockRow:
    name: str
    max_rel_error: float
    cosine: float  # of the worst sample
    top1_agreement: float | None = None  # at the head only
    over_tolerance: bool = False


class Running:
    """Per-block statistics accumulated chunk by chunk: exactly what :func:`block_rows` computes
    from whole arrays (maxima, the worst sample's cosine, the head's top-1 count)."""

    def __init__(self, names: list[str], labels: tuple[str, str]) -> None:
        self.names, self.labels = names, labels
        self.scale = [0.0] * len(names)  # max|a|
        self.diff = [0.0] * len(names)  # max|b - a|
        self.cos = [1.0] * len(names)
        self.finite = [True] * len(names)  # b's values
        self.agree = self.count = 0

    def add(self, outs_a: list[np.ndarray], outs_b: list[np.ndarray]) -> None:
        for i, (name, va, vb) in enumerate(zip(self.names, outs_a, outs_b)):
            if va.shape != vb.shape:
                raise OnnxModelError(f"block {name} outputs {list(va.shape)} in {self.labels[0]} "
                                     f"but {list(vb.shape)} in {self.labels[1]}")
            if not va.size:
                continue
            if not np.all(np.isfinite(vb)):
                self.finite[i] = False
                continue
            self.scale[i] = max(self.scale[i], float(np.max(np.abs(va))))
            self.diff[i] = max(self.diff[i], float(np.max(np.abs(vb.astype(np.float64) - va))))
            self.cos[i] = min(self.cos[i], _cosine(va, vb))
        head_a, head_b = outs_a[-1], outs_b[-1]
        self.agree += int(np.sum(head_a.argmax(-1) == head_b.argmax(-1)))
        self.count += len(head_a)

    def rows(self, tolerance: float) -> list[BlockRow]:
        rows = []
        for i, name in enumerate(self.names):
            if self.finite[i]:
                rel, cos = (self.diff[i] / self.scale[i] if self.scale[i] > 0 else self.diff[i]), self.cos[i]
            else:
                rel, cos = float("inf"), float("nan")
            top1 = self.agree / self.count if i == len(self.names) - 1 and self.count else None
            rows.append(BlockRow(name, rel, cos, top1, not rel <= tolerance))
        return rows


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a = a.reshape(len(a), -1).astype(np.float64)
    b = b.reshape(len(b), -1).astype(np.float64)
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    both_zero = (na == 0) & (nb == 0)
    cos = np.where(both_zero, 1.0, (a * b).sum(1) / np.maximum(na * nb, 1e-300))
    return float(cos.min())


def block_rows(names: list[str], outs_a: list[np.ndarray], outs_b: list[np.ndarray], tolerance: float,
               labels: tuple[str, str]) -> list[BlockRow]:
    """One row per block: max relative error against ``outs_a``, worst cosine, top-1 at the head."""
    running = Running(names, labels)
    running.add(outs_a, outs_b)
    return running.rows(tolerance)
