"""The classifier at the end of a ResNet graph, found and cut off: what ``optimize --features``
does to a file made elsewhere (torchvision, timm, or our own export).

A ResNet ends ``global average pool -> Flatten/Reshape/Squeeze -> Gemm`` (torch.onnx, TorchScript
or dynamo; ``ReduceMean`` for the pool in the dynamo exporter and timm) or ``MatMul [+ Add]``
where a converter split the Gemm. The classifier's input is the pooled feature vector
``[N, C]``: :func:`cut_classifier` makes it the graph's output, named ``embedding``, and drops the
nodes and initializers only the classifier used. A graph whose output is not such a classifier
reading pooled features is refused by name: there is no embedding to cut out of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import onnx
from onnx import helper

from .._errors import OnnxModelError
from .embedding import EMBEDDING_NAME
from .passes._graph import attribute, initializer_map, producers, remove_dead_nodes, remove_unused_initializers

__all__ = ["ClassifierHead", "find_classifier_head", "cut_classifier", "expose_features"]

_POOLS = ("GlobalAveragePool", "ReduceMean")
_FLATTENS = ("Flatten", "Reshape", "Squeeze")


@dataclass(frozen=True)
class ClassifierHead:
    """The classifier's nodes (``Gemm``, or ``MatMul`` and its ``Add``) by their first output's
    name (a node's name may be empty or repeated), the pooled tensor they read and its width."""

    nodes: tuple[str, ...]
    features: str
    width: int
    op: str  # "Gemm", "MatMul" or "MatMul+Add", for the report


def find_classifier_head(model: onnx.ModelProto, source: str = "model") -> ClassifierHead:
    """The classifier producing the graph's one output, or OnnxModelError naming ``source``."""
    graph = model.graph
    if len(graph.output) != 1:
        raise OnnxModelError(f"{source} has {len(graph.output)} outputs; a classifier to cut has one (its logits)")
    made_by = producers(graph)
    weights = initializer_map(graph)
    last = made_by.get(graph.output[0].name)
    if last is None:
        raise OnnxModelError(f"{source}: no node computes its output {graph.output[0].name!r}")
    if last.op_type == "Gemm":
        head, op, a, w = [last], "Gemm", last.input[0], last.input[1]
        if attribute(last, "transA", 0):
            raise OnnxModelError(f"{source}: its final Gemm transposes its input (transA=1); expected features [N, C]")
        axis = 1 if attribute(last, "transB", 0) else 0
    else:
        matmul = _matmul_of(last, made_by, weights)
        if matmul is None:
            raise OnnxModelError(f"{source} has no classifier to cut: its output {graph.output[0].name!r} comes from "
                                 f"{last.op_type}, not a Gemm or MatMul(+Add) reading pooled features")
        head = [last] if matmul is last else [last, matmul]
        op, a, w, axis = ("MatMul" if matmul is last else "MatMul+Add"), matmul.input[0], matmul.input[1], 0
    if w not in weights or len(weights[w].dims) != 2:
        raise OnnxModelError(f"{source}: the weight of its final {op} is not a constant matrix")
    _check_pooled(a, made_by, source, op)
    return ClassifierHead(tuple(n.output[0] for n in head), a, int(weights[w].dims[axis]), op)


def cut_classifier(model: onnx.ModelProto, head: ClassifierHead, source: str = "model") -> onnx.ModelProto:
    """A copy of ``model`` whose output is the pooled tensor the classifier read, named
    ``embedding`` (float32 ``[N, width]``), without the classifier and what only it used."""
    cut = onnx.ModelProto()
    cut.CopyFrom(model)
    graph = cut.graph
    if EMBEDDING_NAME != head.features and any(EMBEDDING_NAME in (*n.input, *n.output) for n in graph.node):
        raise OnnxModelError(f"{source}: a tensor inside it is named {EMBEDDING_NAME!r} already")
    kept = [n for n in graph.node if n.output[0] not in head.nodes]
    del graph.node[:]
    graph.node.extend(kept)
    for node in graph.node:
        node.output[:] = [EMBEDDING_NAME if o == head.features else o for o in node.output]
        node.input[:] = [EMBEDDING_NAME if i == head.features else i for i in node.input]
    value_info = [v for v in graph.value_info if v.name != head.features]
    del graph.value_info[:]
    graph.value_info.extend(value_info)
    del graph.output[:]
    graph.output.append(_features_info(model, EMBEDDING_NAME, head.width))
    remove_dead_nodes(graph)
    remove_unused_initializers(graph)
    return cut


def expose_features(model: onnx.ModelProto, head: ClassifierHead) -> onnx.ModelProto:
    """A copy of ``model``, the whole graph, with the classifier's input as an extra output put
    first: what the cut graph is verified against."""
    exposed = onnx.ModelProto()
    exposed.CopyFrom(model)
    exposed.graph.output.insert(0, _features_info(model, head.features, head.width))
    return exposed


def _matmul_of(last: onnx.NodeProto, made_by: dict[str, onnx.NodeProto],
               weights: dict[str, onnx.TensorProto]) -> onnx.NodeProto | None:
    """The MatMul of a ``MatMul`` or ``MatMul -> Add(bias)`` classifier ending at ``last``."""
    if last.op_type == "MatMul":
        return last
    if last.op_type != "Add":
        return None
    for mine, other in ((0, 1), (1, 0)):
        node = made_by.get(last.input[mine])
        if node is not None and node.op_type == "MatMul" and last.input[other] in weights:
            return node
    return None


def _check_pooled(tensor: str, made_by: dict[str, onnx.NodeProto], source: str, op: str) -> None:
    """The classifier must read globally pooled features: ``pool -> flatten`` or a pool that
    drops its axes itself (ReduceMean keepdims=0)."""
    node = made_by.get(tensor)
    if node is not None and node.op_type in _FLATTENS:
        node = made_by.get(node.input[0])
    if node is None or node.op_type not in _POOLS:
        raise OnnxModelError(f"{source}: its final {op} does not read globally pooled features "
                             "(GlobalAveragePool or ReduceMean, then Flatten/Reshape): no ResNet embedding to cut")


def _features_info(model: onnx.ModelProto, name: str, width: int) -> onnx.ValueInfoProto:
    """``name`` as float32 ``[batch, width]``, the batch as the graph's input has it."""
    batch = model.graph.input[0].type.tensor_type.shape.dim[0]
    dim: int | str | None = batch.dim_value if batch.HasField("dim_value") else (batch.dim_param or None)
    return helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, [dim, width])
