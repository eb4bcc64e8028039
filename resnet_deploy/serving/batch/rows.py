"""What a row says: the Parquet columns of a job and how a batch of model outputs becomes them.

Every input is one row: ``path``, ``status`` (``ok``, or one line saying why that image has no
answer), then the answer (null on a failed row) and where it came from: ``model_sha256`` and
``engine`` (the engine and the provider, e.g. ``local:cpu``). A classifier's answer is
``top_k_indices``/``top_k_scores``, the softmax probabilities exactly as ``predict`` reports
them (float64 softmax, ties in index order, stored as float32); an embedding model's is
``embedding``, its output as float32, unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pyarrow as pa

from ...runtime.answers import top_classes
from .decode import OK

__all__ = ["RowFormat", "OK", "PATH", "STATUS", "TOP_K_INDICES", "TOP_K_SCORES", "EMBEDDING", "MODEL_SHA256", "ENGINE"]

PATH, STATUS, MODEL_SHA256, ENGINE = "path", "status", "model_sha256", "engine"
TOP_K_INDICES, TOP_K_SCORES, EMBEDDING = "top_k_indices", "top_k_scores", "embedding"


@dataclass(frozen=True)
class RowFormat:
    """The columns of one job: what its model answers, and the values every row repeats."""

    kind: str  # "logits" or "embedding"
    top_k: int
    width: int | None  # classes (None: not fixed in the graph) or the embedding's size
    model_sha256: str
    engine: str

    def schema(self) -> pa.Schema:
        if self.kind == "embedding":
            answer = [pa.field(EMBEDDING, pa.list_(pa.float32(), self.width))]
        else:
            answer = [pa.field(TOP_K_INDICES, pa.list_(pa.int64())), pa.field(TOP_K_SCORES, pa.list_(pa.float32()))]
        return pa.schema([pa.field(PATH, pa.string(), nullable=False), pa.field(STATUS, pa.string(), nullable=False),
                          *answer, pa.field(MODEL_SHA256, pa.string(), nullable=False),
                          pa.field(ENGINE, pa.string(), nullable=False)])

    def record_batch(self, paths: Sequence[str], statuses: Sequence[str], outputs: np.ndarray) -> pa.RecordBatch:
        """Rows for ``paths``; ``outputs`` holds the model's output row of each image whose status
        is :data:`OK` (the rows of the others are ignored)."""
        n = len(paths)
        valid = np.array([s == OK for s in statuses], dtype=bool)
        if self.kind == "embedding":
            values = outputs.astype(np.float32, copy=False).reshape(n, -1)
            answer = [pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), values.shape[1],
                                                        mask=pa.array(~valid))]
        else:
            k = min(self.top_k, outputs.shape[1])
            # predict's ranking (float64 softmax, ties in index order), its scores stored as float32
            indices, scores = top_classes(outputs, k) if n else (np.zeros((0, k), np.int64), np.zeros((0, k)))
            scores = scores.astype(np.float32)
            offsets = pa.array(np.concatenate([[0], np.cumsum(np.where(valid, k, 0))]).astype(np.int32))
            answer = [pa.ListArray.from_arrays(offsets, pa.array(indices[valid].reshape(-1)), mask=pa.array(~valid)),
                      pa.ListArray.from_arrays(offsets, pa.array(scores[valid].reshape(-1)), mask=pa.array(~valid))]
        columns = [pa.array(list(paths), pa.string()), pa.array(list(statuses), pa.string()), *answer,
                   pa.array([self.model_sha256] * n, pa.string()), pa.array([self.engine] * n, pa.string())]
        return pa.RecordBatch.from_arrays(columns, schema=self.schema())
