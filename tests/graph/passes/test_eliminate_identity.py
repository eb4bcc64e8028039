from __future__ import annotations

import numpy as np
from onnx import helper

from resnet_deploy.graph.passes.eliminate_identity import eliminate_identity
from resnet_deploy.graph.passes.base import run_passes

from ._graphs import copy, make_model, ops, run


def test_removes_chains_and_keeps_output_names(rng: np.random.Generator) -> None:
    nodes = [
        helper.make_node("Identity", ["x"], ["i1"]),
        helper.make_node("Relu", ["i1"], ["r"]),
        helper.make_node("Identity", ["r"], ["i2"]),
        helper.make_node("Identity", ["i2"], ["y"]),
    ]
    model = make_model(nodes, {}, [2, 3], [2, 3])
    x = rng.standard_normal((2, 3), dtype=np.float32)
    before = run(model, x)
    out = copy(model)
    totals = run_passes(out, "portable")
    # Every Identity counted once, over however many rounds; nothing for the other portable passes.
    assert totals == {"eliminate_identity": 3, "fold_conv_bn": 0, "unfuse_fused_conv": 0}
    assert ops(out) == ["Relu"]
    assert out.graph.output[0].name == "y"
    np.testing.assert_array_equal(run(out, x), before)


def test_identity_from_input_to_output_is_kept() -> None:
    model = make_model([helper.make_node("Identity", ["x"], ["y"])], {}, [1], [1])
    assert eliminate_identity(model).changes == 0
