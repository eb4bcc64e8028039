from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper

from resnet_deploy.graph.passes.fold_conv_bn import fold_conv_bn
from resnet_deploy.graph.verify import compare

from ._graphs import bn_node, bn_params, copy, make_model, ops, run


@pytest.mark.parametrize("bias, group, eps", [(False, 1, 1e-5), (True, 1, 1e-3), (True, 4, 1e-5)])
def test_folds_into_conv(rng: np.random.Generator, bias: bool, group: int, eps: float) -> None:
    inits = {"W": rng.normal(0, 0.3, (8, 8 // group, 3, 3)), **bn_params(rng, 8)}
    conv_inputs = ["x", "W"]
    if bias:
        inits["B"] = rng.normal(0, 0.1, 8)
        conv_inputs.append("B")
    nodes = [helper.make_node("Conv", conv_inputs, ["c"], pads=[1, 1, 1, 1], group=group), bn_node("c", "y", eps=eps)]
    model = make_model(nodes, inits, [2, 8, 6, 6], [2, 8, 6, 6])
    x = rng.standard_normal((2, 8, 6, 6), dtype=np.float32)
    before = run(model, x)
    folded = copy(model)
    result = fold_conv_bn(folded)
    print(result)
    assert result.changes == 1
    assert ops(folded) == ["Conv"]
    onnx.checker.check_model(folded, full_check=True)
    parity = compare(run(folded, x), before, rtol=1e-5)
    print(parity.describe())
    assert parity.ok


def test_shared_weight_is_not_corrupted(rng: np.random.Generator) -> None:
    """Two convs read the same weight; only one is followed by BN."""
    inits = {"W": rng.normal(0, 0.3, (4, 4, 1, 1)), **bn_params(rng, 4)}
    nodes = [
        helper.make_node("Conv", ["x", "W"], ["c1"]),
        bn_node("c1", "b1"),
        helper.make_node("Conv", ["x", "W"], ["c2"]),
        helper.make_node("Add", ["b1", "c2"], ["y"]),
    ]
    model = make_model(nodes, inits, [1, 4, 5, 5], [1, 4, 5, 5])
    x = rng.standard_normal((1, 4, 5, 5), dtype=np.float32)
    before = run(model, x)
    folded = copy(model)
    assert fold_conv_bn(folded).changes == 1
    assert compare(run(folded, x), before, rtol=1e-5).ok


def test_conv_with_two_readers_is_left_alone(rng: np.random.Generator) -> None:
    inits = {"W": rng.normal(0, 0.3, (4, 4, 1, 1)), **bn_params(rng, 4)}
    nodes = [
        helper.make_node("Conv", ["x", "W"], ["c"]),
        bn_node("c", "b"),
        helper.make_node("Add", ["b", "c"], ["y"]),
    ]
    model = make_model(nodes, inits, [1, 4, 5, 5], [1, 4, 5, 5])
    assert fold_conv_bn(model).changes == 0
    assert "BatchNormalization" in ops(model)


def test_bn_after_non_conv_is_left_alone(rng: np.random.Generator) -> None:
    nodes = [helper.make_node("Relu", ["x"], ["r"]), bn_node("r", "y")]
    model = make_model(nodes, bn_params(rng, 4), [1, 4, 3, 3], [1, 4, 3, 3])
    assert fold_conv_bn(model).changes == 0
