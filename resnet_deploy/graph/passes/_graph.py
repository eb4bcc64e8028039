"""Small helpers shared by the graph passes."""

from __future__ import annotations

import collections
from typing import Iterable

import numpy as np
import onnx
from onnx import numpy_helper

__all__ = [
    "consumers",
    "producers",
    "initializer_map",
    "attribute",
    "unique_name",
    "remove_dead_nodes",
    "remove_unused_initializers",
    "graph_output_names",
]


def consumers(graph: onnx.GraphProto) -> dict[str, list[onnx.NodeProto]]:
    """Map each value name to the nodes that read it."""
    out: dict[str, list[onnx.NodeProto]] = collections.defaultdict(list)
    for node in graph.node:
        for name in node.input:
            if name:
                out[name].append(node)
    return out


def producers(graph: onnx.GraphProto) -> dict[str, onnx.NodeProto]:
    return {name: node for node in graph.node for name in node.output if name}


def initializer_map(graph: onnx.GraphProto) -> dict[str, onnx.TensorProto]:
    return {t.name: t for t in graph.initializer}


def attribute(node: onnx.NodeProto, name: str, default: object = None) -> object:
    for attr in node.attribute:
        if attr.name == name:
            return onnx.helper.get_attribute_value(attr)
    return default


def graph_output_names(graph: onnx.GraphProto) -> set[str]:
    return {o.name for o in graph.output}


def unique_name(graph: onnx.GraphProto, base: str) -> str:
    taken = {t.name for t in graph.initializer} | {i.name for i in graph.input}
    taken |= {o for n in graph.node for o in n.output}
    name, i = base, 0
    while name in taken:
        i += 1
        name = f"{base}_{i}"
    return name


def add_initializer(graph: onnx.GraphProto, base: str, array: np.ndarray) -> str:
    name = unique_name(graph, base)
    graph.initializer.append(numpy_helper.from_array(array, name))
    return name


def remove_nodes(graph: onnx.GraphProto, dead: Iterable[onnx.NodeProto]) -> None:
    dead_ids = {id(n) for n in dead}
    keep = [n for n in graph.node if id(n) not in dead_ids]
    del graph.node[:]
    graph.node.extend(keep)


def remove_dead_nodes(graph: onnx.GraphProto) -> int:
    """Drop nodes none of whose outputs are read or are graph outputs; repeat to a fixed point."""
    removed = 0
    while True:
        used = {name for n in graph.node for name in n.input} | graph_output_names(graph)
        dead = [n for n in graph.node if not any(o in used for o in n.output if o)]
        if not dead:
            return removed
        remove_nodes(graph, dead)
        removed += len(dead)


def remove_unused_initializers(graph: onnx.GraphProto) -> int:
    used = {name for n in graph.node for name in n.input} | graph_output_names(graph)
    unused = {t.name for t in graph.initializer if t.name not in used}
    if unused:
        keep = [t for t in graph.initializer if t.name not in unused]
        del graph.initializer[:]
        graph.initializer.extend(keep)
        # Models of IR version < 4 also list initializers as graph inputs.
        inputs = [i for i in graph.input if i.name not in unused]
        del graph.input[:]
        graph.input.extend(inputs)
    return len(unused)


def topological_sort(graph: onnx.GraphProto) -> None:
    """Reorder nodes so each comes after the producers of its inputs (ONNX requires it; some
    converters append nodes at the end). Stable: already-sorted graphs keep their order."""
    available = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending = list(graph.node)
    ordered: list[onnx.NodeProto] = []
    while pending:
        ready = [n for n in pending if all(i in available for i in n.input)]
        if not ready:
            raise ValueError(f"graph has a cycle or a missing input near node {pending[0].name!r}")
        ready_ids = {id(n) for n in ready}
        for node in ready:
            ordered.append(node)
            available.update(node.output)
        pending = [n for n in pending if id(n) not in ready_ids]
    del graph.node[:]
    graph.node.extend(ordered)
