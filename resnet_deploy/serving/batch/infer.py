"""Inference: one decoded batch through a Predictor -> its rows. Every engine calls this, so the
rows of a job are the same whoever ran it."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ..._errors import OnnxModelError
from ...runtime import Predictor
from .decode import Decoded
from .rows import RowFormat

__all__ = ["infer_batch"]


def _non_finite(kind: str) -> str:
    what = "a non-finite embedding" if kind == "embedding" else "non-finite logits"
    return f"the model computed {what} (NaN or Inf) for this image"


def infer_batch(predictor: Predictor, decoded: Decoded, fmt: RowFormat) -> pa.RecordBatch:
    """Run each group of ``decoded`` through ``predictor`` and return the batch's rows.

    A row whose output is not finite gets a status saying so (``predict`` refuses such an
    answer; here one image must not stop the job). A model whose output is not ``[N, width]``
    raises :class:`OnnxModelError`: that is the model's fault, not an image's."""
    statuses = list(decoded.statuses)
    outputs: np.ndarray | None = None
    for rows, batch in decoded.groups:
        out = predictor.run(batch)
        if out.ndim != 2 or out.shape[0] != len(rows) or (fmt.width is not None and out.shape[1] != fmt.width):
            raise OnnxModelError(f"{predictor.model_path}: output {predictor.output_name!r} has shape "
                                 f"{list(out.shape)}; expected [N, {fmt.width or 'width'}] for N = {len(rows)} images")
        if outputs is None:
            outputs = np.zeros((len(statuses), out.shape[1]), out.dtype)
        finite = np.isfinite(out).all(axis=1)
        for row, answer, ok in zip(rows, out, finite):
            if ok:
                outputs[row] = answer
            else:
                statuses[row] = _non_finite(fmt.kind)
    if outputs is None:  # every image of the batch failed to decode
        outputs = np.zeros((len(statuses), fmt.width or 1), np.float32)
    return fmt.record_batch(decoded.paths, statuses, outputs)
