from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper

from resnet_deploy.graph.passes.fuse_add_relu import fuse_add_relu
from resnet_deploy.graph.verify import compare

from ._graphs import copy, make_model, ops, run


def _residual(rng: np.random.Generator, *, bias: bool, conv_first: bool) -> onnx.ModelProto:
    inits = {"W": rng.normal(0, 0.3, (4, 4, 3, 3))}
    inputs = ["x", "W"]
    if bias:
        inits["B"] = rng.normal(0, 0.1, 4)
        inputs.append("B")
    add_inputs = ["c", "x"] if conv_first else ["x", "c"]
    nodes = [
        helper.make_node("Conv", inputs, ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Add", add_inputs, ["a"]),
        helper.make_node("Relu", ["a"], ["y"]),
    ]
    return make_model(nodes, inits, [2, 4, 5, 5], [2, 4, 5, 5])


@pytest.mark.parametrize("bias, conv_first", [(True, True), (False, False)])
def test_fuses_into_fused_conv(rng: np.random.Generator, bias: bool, conv_first: bool) -> None:
    model = _residual(rng, bias=bias, conv_first=conv_first)
    x = rng.standard_normal((2, 4, 5, 5), dtype=np.float32)
    before = run(model, x)
    fused = copy(model)
    result = fuse_add_relu(fused)
    assert result.changes == 1
    assert ops(fused) == ["FusedConv"]
    node = fused.graph.node[0]
    assert node.domain == "com.microsoft" and len(node.input) == 4 and node.input[3] == "x"
    assert any(o.domain == "com.microsoft" for o in fused.opset_import)
    parity = compare(run(fused, x), before, rtol=1e-5)
    print(parity.describe())
    assert parity.ok


def test_add_read_twice_is_left_alone(rng: np.random.Generator) -> None:
    inits = {"W": rng.normal(0, 0.3, (4, 4, 1, 1))}
    nodes = [
        helper.make_node("Conv", ["x", "W"], ["c"]),
        helper.make_node("Add", ["c", "x"], ["a"]),
        helper.make_node("Relu", ["a"], ["r"]),
        helper.make_node("Add", ["r", "a"], ["y"]),
    ]
    model = make_model(nodes, inits, [1, 4, 3, 3], [1, 4, 3, 3])
    assert fuse_add_relu(model).changes == 0


def test_add_without_relu_is_left_alone(rng: np.random.Generator) -> None:
    inits = {"W": rng.normal(0, 0.3, (4, 4, 1, 1))}
    nodes = [helper.make_node("Conv", ["x", "W"], ["c"]), helper.make_node("Add", ["c", "x"], ["y"])]
    model = make_model(nodes, inits, [1, 4, 3, 3], [1, 4, 3, 3])
    assert fuse_add_relu(model).changes == 0
