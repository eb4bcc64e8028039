"""``bench --url``: the checks of what the server answers, the first answer and every timed one.

The first answer is the one compared with the in-process baseline (the row's ``max_rel_error``):
it must be what the model file answers, ``[N, classes]`` of finite floating-point numbers
(:func:`check_first`). Checking it alone let a server that breaks under load through (issue 26
C.1: right once, then NaN ``[1, 5]`` on every timed request, gave a clean row with rel err 0.0
and exit 0). Every request of the benchmark sends the same input, so every later answer must be
the first one again (:class:`SameAnswer`): the same shape and dtype, finite, and within
:data:`ANSWER_TOLERANCE` of it. A clean row then says that every timed answer was within its rel
err plus the tolerance of the in-process answer (relative to the first answer's largest value).

What it cannot see: every request sends the same input, so a server that hands one request
another's answer gives the right numbers. Rows within a request differ (a seeded input of
standard-normal images), and answering one with another row's logits is caught.

The check of a timed answer runs after its time is taken (:mod:`.timing`'s ``check``): the
latencies never include it, the wall time of a round does. It is one vectorised pass over the
``N x classes`` answer (subtract, absolute value, maximum: NaN and Inf come out of the same
maximum), while each request has already sent ``N x 3 x H x W`` input values and decoded the
answer it checks: 300 times fewer values for a CIFAR ResNet, 150 for ImageNet's 1000 classes.
"""

from __future__ import annotations

import numpy as np

from .._errors import VerificationError

__all__ = ["ANSWER_TOLERANCE", "SameAnswer", "check_first"]

# The tolerance tune holds bf16 and fp16 to (tune/verdict.py): the same served model at another
# merged batch may run other kernels, and bf16/fp16 differ from fp32 by 2.9e-3 and 1e-3 on
# ResNets. ResNet-20 on the CPU answers a batch of 8 and its images one by one bit for bit; the
# rows of bench's seeded batch differ from each other's by 7.8e-2 to 1.6e-1 (ResNet-20, CIFAR).
ANSWER_TOLERANCE = 2e-2


def check_first(answer: np.ndarray | None, *, batch: int, classes: int | None, where: str, output: str) -> np.ndarray:
    """``answer`` when it is ``[batch, classes]`` of finite floating-point numbers, as the model
    file's logits are (``classes`` when the file states it); else an error that says what came."""
    if answer is None or answer.ndim != 2 or answer.shape[0] != batch or (classes and answer.shape[1] != classes):
        shape = None if answer is None else list(answer.shape)
        raise VerificationError(f"{where} answered a {output!r} of shape {shape} for a batch of {batch}; "
                                f"the model file's is {[batch, classes or 'classes']}: not comparable")
    if answer.dtype.kind != "f":
        raise VerificationError(f"{where} answered {answer.dtype} values; the model file's logits are floating point: "
                                "not comparable")
    if not np.all(np.isfinite(answer)):
        bad = int(answer.size - np.count_nonzero(np.isfinite(answer)))
        raise VerificationError(f"{where} answered {bad} NaN or infinite values of {answer.size}: not comparable")
    return answer


class SameAnswer:
    """``check(answer)``: a timed answer is the ``first`` answer (checked by :func:`check_first`)
    to the same input again, within :data:`ANSWER_TOLERANCE`; else an error that says how not.
    Read-only after construction: the request threads of one worker share it."""

    def __init__(self, first: np.ndarray, *, where: str, output: str) -> None:
        self.first, self.where, self.output = first, where, output
        self.scale = float(np.max(np.abs(first))) if first.size else 0.0  # compare's: the reference's largest value
        self.limit = ANSWER_TOLERANCE * self.scale if self.scale > 0 else ANSWER_TOLERANCE

    def __call__(self, answer: object) -> None:
        first = self.first
        if not isinstance(answer, np.ndarray) or answer.shape != first.shape:
            shape = list(answer.shape) if isinstance(answer, np.ndarray) else None
            raise VerificationError(f"{self.where} answered a {self.output!r} of shape {shape} to the input it first "
                                    f"answered with {list(first.shape)}: not comparable")
        if answer.dtype != first.dtype:
            raise VerificationError(f"{self.where} answered {answer.dtype} to the input it first answered in "
                                    f"{first.dtype}: not comparable")
        worst = np.max(np.abs(answer - first)) if answer.size else 0.0
        if worst <= self.limit:  # False for NaN, so also the test of finite numbers
            return
        finite = np.isfinite(answer)
        if not finite.all():
            bad = int(answer.size - np.count_nonzero(finite))
            raise VerificationError(f"{self.where} answered {bad} NaN or infinite values of {answer.size} to the input "
                                    "it first answered in finite numbers: not comparable")
        rel = float(worst) / self.scale if self.scale > 0 else float(worst)
        raise VerificationError(f"{self.where} answered the input it first answered with other numbers: "
                                f"rel err {rel:.1e} from its first answer, over the {ANSWER_TOLERANCE:g} allowed")
