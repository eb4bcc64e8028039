"""FusedConv back to standard ONNX: on tiny graphs, and on a real ``optimize --target cpu`` file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

import resnet_deploy as rd
from resnet_deploy.graph.io import load_onnx, op_counts
from resnet_deploy.export.optimize import optimize_file, optimize_model
from resnet_deploy.graph.passes import list_passes
from resnet_deploy.graph.passes.fuse_add_relu import fuse_add_relu
from resnet_deploy.graph.passes.unfuse_fused_conv import nonportable_ops, unfuse_fused_conv
from resnet_deploy.export.pipeline import ort_outputs
from resnet_deploy.graph.verify import compare

from ._graphs import copy, make_model, ops, run

RTOL = 1e-5


def _fused(rng: np.random.Generator, *, bias: bool, z: bool, activation: str = "Relu") -> onnx.ModelProto:
    """x -> FusedConv(x, W[, B][, Z=x]) with strides/pads/dilations/group that must survive."""
    inits = {"W": rng.normal(0, 0.3, (4, 2, 3, 3))}
    inputs = ["x", "W", "B" if bias else ""]
    if bias:
        inits["B"] = rng.normal(0, 0.1, 4)
    if z:
        inputs.append("x")
    node = helper.make_node("FusedConv", inputs, ["y"], name="fc", domain="com.microsoft", activation=activation,
                            pads=[1, 1, 1, 1], strides=[1, 1], dilations=[1, 1], group=2)
    return make_model([node], inits, [2, 4, 5, 5], [2, 4, 5, 5], ms=True)


@pytest.mark.parametrize("bias, z", [(True, True), (False, True), (True, False), (False, False)])
def test_unfuses_to_standard_ops(rng: np.random.Generator, bias: bool, z: bool) -> None:
    model = _fused(rng, bias=bias, z=z)
    x = rng.standard_normal((2, 4, 5, 5), dtype=np.float32)
    before = run(model, x)
    out = copy(model)
    result = unfuse_fused_conv(out)
    onnx.checker.check_model(out, full_check=True)
    assert result.changes == 1 and result.details == ["fc"]
    assert ops(out) == (["Conv", "Add", "Relu"] if z else ["Conv", "Relu"])
    assert all(n.domain == "" for n in out.graph.node) and [o.domain for o in out.opset_import] == [""]
    conv = out.graph.node[0]
    assert list(conv.input) == (["x", "W", "B"] if bias else ["x", "W"])
    attrs = {a.name: helper.get_attribute_value(a) for a in conv.attribute}
    assert attrs == {"pads": [1, 1, 1, 1], "strides": [1, 1], "dilations": [1, 1], "group": 2}  # activation dropped
    parity = compare(run(out, x), before, rtol=RTOL)
    print(parity.describe())
    assert parity.ok


def test_round_trip_with_fuse_add_relu(rng: np.random.Generator) -> None:
    inits = {"W": rng.normal(0, 0.3, (4, 4, 3, 3)), "B": rng.normal(0, 0.1, 4)}
    nodes = [helper.make_node("Conv", ["x", "W", "B"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["x", "c"], ["a"]), helper.make_node("Relu", ["a"], ["y"])]
    model = make_model(nodes, inits, [1, 4, 5, 5], [1, 4, 5, 5])
    x = rng.standard_normal((1, 4, 5, 5), dtype=np.float32)
    fused = copy(model)
    assert fuse_add_relu(fused).changes == 1 and ops(fused) == ["FusedConv"]
    assert unfuse_fused_conv(fused).changes == 1 and ops(fused) == ["Conv", "Add", "Relu"]
    assert compare(run(fused, x), run(model, x), rtol=RTOL).ok


def test_other_activation_is_left_and_named(rng: np.random.Generator) -> None:
    model = _fused(rng, bias=True, z=True, activation="Tanh")
    assert unfuse_fused_conv(model).changes == 0 and ops(model) == ["FusedConv"]
    assert nonportable_ops(model) == {"com.microsoft.FusedConv(Tanh)": 1}
    with pytest.raises(rd.OnnxModelError, match=r"tanh\.onnx holds onnxruntime-specific ops .*FusedConv\(Tanh\) "
                                                r"x1.*--target cpu"):
        optimize_model(model, "portable", source="tanh.onnx")


def test_registered_for_portable_only() -> None:
    assert "unfuse_fused_conv" in list_passes("portable")
    assert "unfuse_fused_conv" not in list_passes("cpu") and "unfuse_fused_conv" not in list_passes("cuda")


def test_cpu_file_optimized_again_for_portable_is_standard_onnx(resnet20_onnx: Path, tmp_path: Path) -> None:
    """optimize --target cpu, then optimize (portable): no com.microsoft node is left, and the
    outputs match the cpu file's and the original's."""
    cpu, portable = tmp_path / "cpu.onnx", tmp_path / "portable.onnx"
    optimize_file(resnet20_onnx, cpu, "cpu")
    assert op_counts(load_onnx(cpu))["com.microsoft.FusedConv"] == 9
    result = optimize_file(cpu, portable)
    model = load_onnx(portable)
    print({s.name: s.note for s in result.stages})
    assert [n for n in model.graph.node if n.domain not in ("", "ai.onnx")] == []
    assert all(o.domain in ("", "ai.onnx") for o in model.opset_import)
    assert result.fusions["unfuse_fused_conv"] == 9
    x = np.random.default_rng(3).standard_normal((4, 3, 32, 32), dtype=np.float32)
    got = ort_outputs(model, x)
    for reference in (cpu, resnet20_onnx):
        parity = compare(got, ort_outputs(load_onnx(reference), x), rtol=1e-4)
        assert parity.ok, parity.describe()
