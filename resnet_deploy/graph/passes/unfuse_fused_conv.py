"""Undo :mod:`.fuse_add_relu`: ``com.microsoft.FusedConv`` back to standard ``Conv [+ Add] + Relu``.

A file optimized for the ``cpu`` or ``cuda`` target holds onnxruntime's contrib op, which no
other runtime reads. onnxruntime computes ``activation(Conv(X, W, B) + Z)`` (``Z``, the fourth
input, is optional; ``contrib_ops/cpu/fused_conv.cc``), so the standard form is a ``Conv`` with
the same attributes, an ``Add`` of ``Z`` when it is given, then the activation. Only ``Relu`` is
unfused (the one activation this toolkit fuses); anything else is reported by
:func:`nonportable_ops` and left for the caller to refuse.
"""

from __future__ import annotations

import collections

import onnx
from onnx import helper

from ._graph import unique_name
from .base import PassResult, register_pass
from .fuse_add_relu import MS_DOMAIN

__all__ = ["unfuse_fused_conv", "nonportable_ops", "is_standard"]

_FUSED_ONLY = ("activation", "activation_params")  # FusedConv's own attributes; the rest are Conv's


def is_standard(node: onnx.NodeProto) -> bool:
    return node.domain in ("", "ai.onnx")


def _can_unfuse(node: onnx.NodeProto) -> bool:
    if node.op_type != "FusedConv" or node.domain != MS_DOMAIN:
        return False
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    return attrs.get("activation") == b"Relu" and not attrs.get("activation_params") and 2 <= len(node.input) <= 4


def nonportable_ops(model: onnx.ModelProto) -> dict[str, int]:
    """Nodes outside the standard ONNX domain that :func:`unfuse_fused_conv` cannot rewrite,
    counted as ``domain.Op`` (a FusedConv with another activation shows as ``...FusedConv(Tanh)``)."""
    left: collections.Counter[str] = collections.Counter()
    for node in model.graph.node:
        if is_standard(node) or _can_unfuse(node):
            continue
        label = f"{node.domain}.{node.op_type}"
        if node.op_type == "FusedConv":
            act = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "activation"), b"none")
            label += f"({act.decode() if isinstance(act, bytes) else act})"
        left[label] += 1
    return dict(left)


def _standard_nodes(graph: onnx.GraphProto, fused: onnx.NodeProto) -> list[onnx.NodeProto]:
    base = fused.name or fused.output[0]
    conv_out = unique_name(graph, f"{base}_conv")
    inputs = list(fused.input[:3])
    while inputs and not inputs[-1]:  # an empty bias name means no bias
        inputs.pop()
    conv = helper.make_node("Conv", inputs, [conv_out], name=unique_name(graph, f"{base}_conv"))
    conv.attribute.extend(a for a in fused.attribute if a.name not in _FUSED_ONLY)
    nodes = [conv]
    z = fused.input[3] if len(fused.input) > 3 else ""
    if z:
        sum_out = unique_name(graph, f"{base}_add")
        nodes.append(helper.make_node("Add", [conv_out, z], [sum_out], name=sum_out))
        conv_out = sum_out
    nodes.append(helper.make_node("Relu", [conv_out], [fused.output[0]], name=unique_name(graph, f"{base}_relu")))
    return nodes


@register_pass("unfuse_fused_conv", targets=("portable",))
def unfuse_fused_conv(model: onnx.ModelProto) -> PassResult:
    graph = model.graph
    new_nodes: list[onnx.NodeProto] = []
    names: list[str] = []
    for node in list(graph.node):
        if not _can_unfuse(node):
            new_nodes.append(node)
            continue
        replacement = _standard_nodes(graph, node)
        # Placed where the FusedConv was: its inputs, Z included, are computed before it.
        new_nodes.extend(replacement)
        graph.node.extend(replacement)  # so that unique_name sees the names taken so far
        names.append(node.name or node.output[0])
    if not names:
        return PassResult("unfuse_fused_conv", 0, [])
    del graph.node[:]
    graph.node.extend(new_nodes)
    if not any(n.domain == MS_DOMAIN for n in graph.node):
        keep = [op for op in model.opset_import if op.domain != MS_DOMAIN]
        del model.opset_import[:]
        model.opset_import.extend(keep)
    return PassResult("unfuse_fused_conv", len(names), names)
