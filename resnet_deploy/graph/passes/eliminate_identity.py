"""Remove ``Identity`` nodes (left by exporters run with ``do_constant_folding=False``)."""

from __future__ import annotations

import onnx

from ._graph import graph_output_names, producers, remove_nodes
from .base import PassResult, register_pass

__all__ = ["eliminate_identity"]


@register_pass("eliminate_identity", targets=("portable", "cpu", "cuda"))
def eliminate_identity(model: onnx.ModelProto) -> PassResult:
    graph = model.graph
    outputs = graph_output_names(graph)
    made_by = producers(graph)
    removed: list[onnx.NodeProto] = []
    rename: dict[str, str] = {}
    for node in graph.node:
        if node.op_type != "Identity" or node.domain not in ("", "ai.onnx"):
            continue
        src, dst = node.input[0], node.output[0]
        src = rename.get(src, src)
        if dst in outputs:
            # A graph output keeps its name: rename the producer's output instead, when the
            # source is a node output that nothing else reads and is not itself a graph output.
            producer = made_by.get(src)
            readers = [n for n in graph.node if src in n.input and n is not node]
            if producer is None or readers or src in outputs:
                continue
            producer.output[list(producer.output).index(src)] = dst
            removed.append(node)
            continue
        rename[dst] = src
        removed.append(node)
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in rename:
                node.input[i] = rename[name]
    remove_nodes(graph, removed)
    return PassResult("eliminate_identity", len(removed), [])
