"""Fuse a residual ``Add`` + ``Relu`` into the ``Conv`` that feeds the Add.

Relu(Conv(x) + z) becomes onnxruntime's contrib op ``com.microsoft.FusedConv(x, W, B, Z)`` with
``activation="Relu"``: the convolution adds ``Z`` to its output before the activation, in one
kernel (onnxruntime ``contrib_ops/cpu/fused_conv.cc`` and its CUDA twin). It is not standard
ONNX, so this pass runs only for the ``cpu`` and ``cuda`` targets.
"""

from __future__ import annotations

import onnx

from ._graph import consumers, graph_output_names, producers
from .base import PassResult, register_pass

__all__ = ["fuse_add_relu", "MS_DOMAIN"]

MS_DOMAIN = "com.microsoft"


def _fusable_conv(name: str, made_by: dict[str, onnx.NodeProto], readers: dict,
                  outputs: set[str]) -> onnx.NodeProto | None:
    conv = made_by.get(name)
    if conv is None or conv.op_type != "Conv" or conv.domain not in ("", "ai.onnx"):
        return None
    if len(readers[name]) != 1 or name in outputs:
        return None
    return conv


@register_pass("fuse_add_relu", targets=("cpu", "cuda"))
def fuse_add_relu(model: onnx.ModelProto) -> PassResult:
    graph = model.graph
    made_by = producers(graph)
    readers = consumers(graph)
    outputs = graph_output_names(graph)
    replaced: dict[int, onnx.NodeProto] = {}  # id(Add) -> FusedConv placed where the Add was
    dead: list[onnx.NodeProto] = []
    for add in list(graph.node):
        if add.op_type != "Add" or add.domain not in ("", "ai.onnx") or len(add.input) != 2:
            continue
        add_readers = readers[add.output[0]]
        if len(add_readers) != 1 or add.output[0] in outputs:
            continue
        relu = add_readers[0]
        if relu.op_type != "Relu" or relu.domain not in ("", "ai.onnx"):
            continue
        for side in (0, 1):
            conv = _fusable_conv(add.input[side], made_by, readers, outputs)
            if conv is None or any(id(conv) == id(d) for d in dead):
                continue
            z = add.input[1 - side]
            if z == add.input[side]:
                continue
            bias = conv.input[2] if len(conv.input) > 2 else ""
            fused = onnx.helper.make_node(
                "FusedConv",
                [conv.input[0], conv.input[1], bias, z],
                [relu.output[0]],
                name=(conv.name or conv.output[0]) + "_add_relu",
                domain=MS_DOMAIN,
                activation="Relu",
            )
            fused.attribute.extend(a for a in conv.attribute)
            replaced[id(add)] = fused
            dead.extend([conv, relu])
            break
    if not replaced:
        return PassResult("fuse_add_relu", 0, [])
    new_nodes = []
    dead_ids = {id(n) for n in dead}
    for node in graph.node:
        if id(node) in replaced:
            new_nodes.append(replaced[id(node)])  # after both Add inputs are computed
        elif id(node) not in dead_ids:
            new_nodes.append(node)
    del graph.node[:]
    graph.node.extend(new_nodes)
    if not any(op.domain == MS_DOMAIN for op in model.opset_import):
        model.opset_import.append(onnx.helper.make_opsetid(MS_DOMAIN, 1))
    return PassResult("fuse_add_relu", len(replaced), [n.name for n in replaced.values()])
