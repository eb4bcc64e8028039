"""A ResNet graph as the chain of blocks an engineer thinks in: stem, ``layer1.0`` ... ``layer4.2``, head.

Found from the graph's structure, so it works on any ResNet-shaped ONNX file: every residual
block ends in an ``Add`` of two activations (the branch and the shortcut), optionally followed
by a ``Relu``; the stem ends where the first block's branch and shortcut fork; the head is
what follows the last block, up to the logits. Names come from the weights the block's
convolutions read: torch.onnx (both exporters) keeps the module's parameter names
(``layer2.0.conv1.weight``), and onnxruntime's quantizer keeps them with a suffix. A file
whose weights carry no such names (renamed by another tool) gets positional names,
``block1`` ... ``blockN``, one per residual ``Add``.

INT8 QDQ graphs are read through their ``QuantizeLinear -> DequantizeLinear`` pairs: a block's
output there is the quantized tensor the next block reads, exposed at the ``QuantizeLinear``
(its integer output, dequantized by :func:`dequantize`), so that no QDQ node group that
onnxruntime or OpenVINO fuses gains a graph output.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

from .._errors import OnnxModelError

__all__ = ["Block", "Probe", "find_blocks", "expose", "dequantize"]

_LAYER = re.compile(r"(?:^|[./])(layer\d+\.\d+)\.")
_QDQ = ("QuantizeLinear", "DequantizeLinear")


@dataclass(frozen=True)
class Probe:
    """Where a block's output is read: a float tensor, or a QuantizeLinear output and its scale."""

    tensor: str
    scale: str | None = None
    zero_point: str | None = None
    elem_type: int = onnx.TensorProto.FLOAT


@dataclass(frozen=True)
class Block:
    """One row of a comparison: a name, its output probe and the nodes it is made of."""

    name: str
    probe: Probe
    nodes: tuple[str, ...]


class _Graph:
    def __init__(self, model: onnx.ModelProto) -> None:
        g = model.graph
        self.nodes = list(g.node)
        self.consts = {i.name for i in g.initializer} | {o for n in g.node if n.op_type == "Constant" for o in n.output}
        self.init = {i.name: i for i in g.initializer}
        self.producer = {o: n for n in g.node for o in n.output}
        self.consumers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
        for n in g.node:
            for i in n.input:
                self.consumers[i].append(n)
        self.order = {o: k for k, n in enumerate(g.node) for o in n.output}

    def canon(self, tensor: str) -> str:
        """The float tensor behind a chain of QuantizeLinear/DequantizeLinear."""
        while tensor in self.producer and self.producer[tensor].op_type in _QDQ:
            tensor = self.producer[tensor].input[0]
        return tensor

    def ancestors(self, tensor: str) -> set[str]:
        seen: set[str] = set()
        stack = [tensor]
        while stack:
            t = stack.pop()
            if t in seen or t in self.consts:
                continue
            seen.add(t)
            if t in self.producer:
                stack.extend(self.producer[t].input)
        return seen

    def probe(self, tensor: str) -> Probe:
        users = self.consumers.get(tensor, [])
        if len(users) == 1 and users[0].op_type == "QuantizeLinear":
            q = users[0]
            zp = q.input[2] if len(q.input) > 2 and q.input[2] else None
            elem = self.init[zp].data_type if zp in self.init else onnx.TensorProto.UINT8
            return Probe(q.output[0], q.input[1], zp, elem)
        return Probe(tensor)

    def weight_names(self, node: onnx.NodeProto) -> list[str]:
        names = []
        for i in node.input:
            if i in self.consts:
                names.append(i)
            elif i in self.producer and self.producer[i].op_type == "DequantizeLinear":
                names.append(self.producer[i].input[0])
        return names


def _is_residual_add(g: _Graph, node: onnx.NodeProto) -> bool:
    return node.op_type == "Add" and len(node.input) == 2 and not any(g.canon(i) in g.consts for i in node.input)


def find_blocks(model: onnx.ModelProto, source: str = "model") -> list[Block]:
    """The stem, every residual block and the head of ``model``, in execution order."""
    g = _Graph(model)
    adds = [n for n in g.nodes if _is_residual_add(g, n)]
    if not adds:
        raise OnnxModelError(
            f"{source} has no residual blocks (no Add of two activations): compare reads ResNets; "
            "a plain net or a file with fused residuals (optimize --target cpu/cuda) has no block structure"
        )
    ends = []
    for add in adds:
        end = add.output[0]
        users = g.consumers.get(end, [])
        if len(users) == 1 and users[0].op_type == "Relu":
            end = users[0].output[0]
        ends.append(end)
    # The stem ends where the first block forks into branch and shortcut: the latest float tensor
    # both inputs of the first Add descend from.
    first = adds[0]
    common = g.ancestors(first.input[0]) & g.ancestors(first.input[1])
    common = {t for t in common if t not in g.producer or g.producer[t].op_type not in _QDQ}
    if not common:
        raise OnnxModelError(f"{source}: the first residual Add's inputs share no stem; not a ResNet")
    stem_end = max(common, key=lambda t: g.order.get(t, -1))
    outputs = [o.name for o in model.graph.output]
    if len(outputs) != 1:
        raise OnnxModelError(f"{source} has {len(outputs)} outputs; compare reads a classifier with one logits output")
    boundaries = [stem_end, *ends, outputs[0]]
    # Assign nodes to blocks in topological order: each block owns the nodes up to its end.
    groups: list[list[onnx.NodeProto]] = [[] for _ in boundaries]
    k = 0
    position = {b: i for i, b in enumerate(boundaries)}
    for node in g.nodes:
        groups[min(k, len(groups) - 1)].append(node)
        hit = [position[o] for o in node.output if o in position]
        if hit:
            k = max(k, hit[0] + 1)
    names = []
    for i, nodes in enumerate(groups):
        if i == 0:
            names.append("stem")
        elif i == len(groups) - 1:
            names.append("head")
        else:
            found = {m.group(1) for n in nodes if n.op_type == "Conv" for w in g.weight_names(n)
                     for m in [_LAYER.search(w)] if m}
            names.append(found.pop() if len(found) == 1 else "")
    if any(not n for n in names[1:-1]) or len(set(names)) != len(names):
        names = ["stem", *(f"block{i}" for i in range(1, len(adds) + 1)), "head"]
    probes = [g.probe(b) for b in boundaries[:-1]] + [Probe(outputs[0])]
    return [Block(n, p, tuple(node.name for node in nodes)) for n, p, nodes in zip(names, probes, groups)]


def expose(model: onnx.ModelProto, blocks: list[Block]) -> onnx.ModelProto:
    """A copy of ``model`` whose graph outputs are the logits and then every block's probe."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    present = {o.name for o in copy.graph.output}
    for block in blocks:
        if block.probe.tensor not in present:
            copy.graph.output.append(
                onnx.helper.make_tensor_value_info(block.probe.tensor, block.probe.elem_type, None))
            present.add(block.probe.tensor)
    return copy


def dequantize(model: onnx.ModelProto, probe: Probe, value: np.ndarray) -> np.ndarray:
    """A probe's value as float32 (integer probes through their scale and zero point)."""
    if probe.scale is None:
        return np.asarray(value, dtype=np.float32)
    inits = {i.name: i for i in model.graph.initializer}
    consts = {n.output[0]: n for n in model.graph.node if n.op_type == "Constant"}

    def read(name: str) -> np.ndarray:
        if name in inits:
            return numpy_helper.to_array(inits[name])
        return numpy_helper.to_array(consts[name].attribute[0].t)

    scale = read(probe.scale).astype(np.float32)
    zero = read(probe.zero_point).astype(np.float32) if probe.zero_point else np.float32(0)
    if scale.ndim == 1 and scale.size > 1:  # per-channel, axis 1
        scale, zero = scale.reshape(1, -1, 1, 1), np.asarray(zero).reshape(1, -1, 1, 1)
    return (value.astype(np.float32) - zero) * scale
