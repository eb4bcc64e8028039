"""Numerical comparison of a transformed model with its source.

The error metric is ``max|a - b| / max|b|``: the largest absolute deviation relative to the
scale of the reference output. A per-element relative error is meaningless for logits that
cross zero; this one is scale-free and strict (1e-4 means four significant digits on the
largest logit). Top-1 agreement is checked separately.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._errors import VerificationError

__all__ = ["Comparison", "compare", "DEFAULT_RTOL", "fixed_inputs"]

DEFAULT_RTOL = 1e-4


@dataclass(frozen=True)
class Comparison:
    max_abs_error: float
    max_rel_error: float
    top1_agreement: float  # fraction of samples whose argmax matches
    rtol: float

    @property
    def ok(self) -> bool:
        return self.max_rel_error <= self.rtol and self.top1_agreement == 1.0

    def describe(self) -> str:
        return (
            f"max rel error {self.max_rel_error:.2e} (tolerance {self.rtol:.0e}), "
            f"max abs error {self.max_abs_error:.2e}, top-1 agreement {self.top1_agreement:.0%}"
        )


def compare(candidate: np.ndarray, reference: np.ndarray, *, rtol: float = DEFAULT_RTOL) -> Comparison:
    candidate = np.asarray(candidate, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if candidate.shape != reference.shape:
        raise VerificationError(f"output shapes differ: {candidate.shape} vs reference {reference.shape}")
    if not np.all(np.isfinite(candidate)):
        raise VerificationError("the candidate output holds NaN or infinite values")
    diff = float(np.max(np.abs(candidate - reference))) if candidate.size else 0.0
    scale = float(np.max(np.abs(reference))) if reference.size else 0.0
    rel = diff / scale if scale > 0 else diff
    top1 = float(np.mean(candidate.argmax(-1) == reference.argmax(-1))) if candidate.ndim >= 2 else 1.0
    return Comparison(diff, rel, top1, rtol)


def fixed_inputs(shape: tuple[int, ...], *, seed: int = 0) -> np.ndarray:
    """Deterministic standard-normal float32 inputs (the scale of normalised images)."""
    return np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)
