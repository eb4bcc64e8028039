"""Fold ``BatchNormalization`` into the ``Conv`` that feeds it.

In inference BN is an affine map per channel, y = s * (x - mean) + beta with
s = gamma / sqrt(var + eps), so Conv(W, b) followed by BN equals Conv(W * s, (b - mean) * s + beta).
Works on any ONNX file: the Conv's output must feed only the BN, and every parameter must be
a constant (initializer). Folding is done in float64 and cast back to the weights' dtype.
The folded weights keep their names (``layer1.0.conv1.weight``) where the Conv is their only
reader: ``compare`` and the quantizer's block names read them.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from ._graph import add_initializer, attribute, consumers, graph_output_names, initializer_map, producers, remove_nodes
from .base import PassResult, register_pass

__all__ = ["fold_conv_bn"]


def _replace(graph: onnx.GraphProto, tensor: onnx.TensorProto, value: np.ndarray,
             readers: dict[str, list[onnx.NodeProto]]) -> str | None:
    """Give ``tensor`` the new ``value`` under its own name when one node reads it; else None."""
    if len(readers[tensor.name]) != 1 or tensor.name in {v.name for v in (*graph.input, *graph.output)}:
        return None
    tensor.CopyFrom(numpy_helper.from_array(value, tensor.name))
    return tensor.name


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
        # Names kept where this Conv alone reads the tensor; a shared one stays for its other readers.
        w_name = _replace(graph, weight, new_w, readers) or add_initializer(graph, f"{weight.name}_bnfold", new_w)
        b_default = weight.name[: -len("weight")] + "bias" if weight.name.endswith("weight") else f"{weight.name}_bias"
        b_name = ((_replace(graph, bias, new_b, readers) if bias is not None else None)
                  or add_initializer(graph, b_default, new_b))
        del conv.input[1:]
        conv.input.extend([w_name, b_name])
        conv.output[0] = bn.output[0]
        folded.append(bn)
    remove_nodes(graph, folded)
    return PassResult("fold_conv_bn", len(folded), [f"{bn.name or bn.output[0]}" for bn in folded])
