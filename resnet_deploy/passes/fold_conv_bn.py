"""Fold ``BatchNormalization`` into the ``Conv`` that feeds it.

In inference BN is an affine map per channel, y = s * (x - mean) + beta with
s = gamma / sqrt(var + eps), so Conv(W, b) followed by BN equals Conv(W * s, (b - mean) * s + beta).
Works on any ONNX file: the Conv's output must feed only the BN, and every parameter must be
a constant (initializer). Folding is done in float64 and cast back to the weights' dtype.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from ._graph import add_initializer, attribute, consumers, graph_output_names, initializer_map, producers, remove_nodes
from .base import PassResult, register_pass

__all__ = ["fold_conv_bn"]


@register_pass("fold_conv_bn", targets=("portable", "cpu", "cuda"))
def fold_conv_bn(model: onnx.ModelProto) -> PassResult:
    graph = model.graph
    inits = initializer_map(graph)
    readers = consumers(graph)
    made_by = producers(graph)
    outputs = graph_output_names(graph)
    folded: list[onnx.NodeProto] = []
    for bn in list(graph.node):
        if bn.op_type != "BatchNormalization" or bn.domain not in ("", "ai.onnx"):
            continue
        if attribute(bn, "training_mode", 0) or len([o for o in bn.output if o]) != 1:
            continue
        conv = made_by.get(bn.input[0])
        if conv is None or conv.op_type != "Conv" or conv.domain not in ("", "ai.onnx"):
            continue
        if len(readers[conv.output[0]]) != 1 or conv.output[0] in outputs:
            continue
        params = [inits.get(name) for name in bn.input[1:5]]
        weight = inits.get(conv.input[1])
        bias = inits.get(conv.input[2]) if len(conv.input) > 2 and conv.input[2] else None
        if weight is None or any(p is None for p in params) or (len(conv.input) > 2 and conv.input[2] and bias is None):
            continue
        gamma, beta, mean, var = (numpy_helper.to_array(p).astype(np.float64) for p in params)
        w = numpy_helper.to_array(weight)
        eps = float(attribute(bn, "epsilon", 1e-5))
        scale = gamma / np.sqrt(var + eps)
        b = numpy_helper.to_array(bias).astype(np.float64) if bias is not None else np.zeros_like(mean)
        new_w = (w.astype(np.float64) * scale.reshape(-1, *([1] * (w.ndim - 1)))).astype(w.dtype)
        new_b = ((b - mean) * scale + beta).astype(w.dtype)
        # New names: the old weight may be shared with another Conv that keeps it.
        w_name = add_initializer(graph, f"{conv.name or conv.output[0]}_W_bnfold", new_w)
        b_name = add_initializer(graph, f"{conv.name or conv.output[0]}_B_bnfold", new_b)
        del conv.input[1:]
        conv.input.extend([w_name, b_name])
        conv.output[0] = bn.output[0]
        folded.append(bn)
    remove_nodes(graph, folded)
    return PassResult("fold_conv_bn", len(folded), [f"{bn.name or bn.output[0]}" for bn in folded])
