"""What makes a file a features file, in ONNX terms and without torch: its output ``embedding``,
the metadata that says so, and the L2 normalisation of ``--normalize``.

``export --features`` and ``optimize --features`` both end in :func:`append_l2_normalize`, so the
two commands write one graph for one request: ``v / max(||v||_2, eps)`` along the features, as
``torch.nn.functional.normalize`` computes it (the eager reference the export is checked against).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .passes._graph import unique_name

__all__ = ["EMBEDDING_NAME", "NORMALIZE_EPS", "CLASS_KEYS", "features_metadata", "is_features_file",
           "append_l2_normalize", "l2_normalize"]

EMBEDDING_NAME = "embedding"  # the output of a features file
NORMALIZE_EPS = 1e-12  # torch.nn.functional.normalize's: a zero vector stays zero, never NaN
CLASS_KEYS = ("num_classes", "labels")  # a classifier's metadata a features file does not have


def features_metadata(dim: int, normalize: bool) -> dict[str, Any]:
    """What a features file records: its output is an embedding of ``dim`` values, unit length or not."""
    return {"output": EMBEDDING_NAME, "embedding_dim": dim, "normalized": normalize}


def is_features_file(metadata: dict[str, Any]) -> bool:
    """Whether a file's metadata says its output is an embedding (what ``Predictor`` reads too)."""
    return metadata.get("output") == EMBEDDING_NAME


def append_l2_normalize(model: onnx.ModelProto) -> None:
    """In place: the graph's one output ``v`` becomes ``v / max(||v||_2, eps)`` along axis 1,
    under the same name; the unnormalised tensor is renamed ``<name>/unnormalized``.

    The norm is ``Sqrt(ReduceSum(v * v))`` rather than ``ReduceL2``: onnxruntime's symbolic shape
    inference, which ``quantize`` runs first, cannot infer ReduceL2 with its opset-18 axes input
    (nor torch's ``Expand`` of the norm) and crashed on those files. ``Max`` rather than ``Clip``
    and the axes as an attribute below opset 13, so that a file made elsewhere in an older opset
    takes the same nodes (Div broadcasts ``[N, 1]``)."""
    graph = model.graph
    name = graph.output[0].name
    raw = unique_name(graph, f"{name}/unnormalized")
    for node in graph.node:
        node.output[:] = [raw if o == name else o for o in node.output]
        node.input[:] = [raw if i == name else i for i in node.input]
    eps = unique_name(graph, f"{name}/eps")
    graph.initializer.append(numpy_helper.from_array(np.array(NORMALIZE_EPS, dtype=np.float32), eps))
    squared, total, norm, clamped = (f"{name}/{step}"
                                     for step in ("squared", "sum_of_squares", "l2_norm", "l2_norm_clamped"))
    if _opset(model) >= 13:
        axes = unique_name(graph, f"{name}/axes")
        graph.initializer.append(numpy_helper.from_array(np.array([1], dtype=np.int64), axes))
        reduce = helper.make_node("ReduceSum", [squared, axes], [total], name=total, keepdims=1)
    else:
        reduce = helper.make_node("ReduceSum", [squared], [total], name=total, axes=[1], keepdims=1)
    graph.node.extend([helper.make_node("Mul", [raw, raw], [squared], name=squared), reduce,
                       helper.make_node("Sqrt", [total], [norm], name=norm),
                       helper.make_node("Max", [norm, eps], [clamped], name=clamped),
                       helper.make_node("Div", [raw, clamped], [name], name=f"{name}/l2_normalize")])


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """The same normalisation in numpy (float64), for the references the graphs are checked against."""
    v = np.asarray(vectors, dtype=np.float64)
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), NORMALIZE_EPS)


def _opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)
