"""The classifier found and cut off on small graphs built with ``onnx.helper``: each form a
ResNet's head takes (Gemm, MatMul, MatMul+Add in either order), the L2 normalisation in both
opset forms, and the graphs with no pooled classifier refused by name."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper

from resnet_deploy._errors import OnnxModelError
from resnet_deploy.graph.classifier_head import cut_classifier, find_classifier_head
from resnet_deploy.graph.embedding import append_l2_normalize, l2_normalize

C, K = 6, 4  # channels after the conv (the embedding's width), classes
RNG = np.random.default_rng(0)
CONV_W = RNG.standard_normal((C, 3, 3, 3)).astype(np.float32)
FC_W = RNG.standard_normal((K, C)).astype(np.float32)
FC_B = RNG.standard_normal(K).astype(np.float32)


def _graph(head: str, *, pool: str = "GlobalAveragePool", opset: int = 18) -> onnx.ModelProto:
    """x [N, 3, 8, 8] -> Conv -> Relu -> ``pool`` -> Flatten -> ``head`` -> y."""
    inits = [numpy_helper.from_array(CONV_W, "conv.w"), numpy_helper.from_array(FC_W, "fc.w"),
             numpy_helper.from_array(FC_B, "fc.b"), numpy_helper.from_array(FC_W.T.copy(), "fc.wt")]
    nodes = [helper.make_node("Conv", ["x", "conv.w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"])]
    nodes.append(helper.make_node(pool, ["r"], ["p"]))  # GlobalMaxPool: no ResNet's features
    nodes.append(helper.make_node("Flatten", ["p"], ["f"], axis=1))
    nodes += {
        "gemm": [helper.make_node("Gemm", ["f", "fc.w", "fc.b"], ["y"], transB=1)],
        "matmul": [helper.make_node("MatMul", ["f", "fc.wt"], ["y"])],
        "matmul+add": [helper.make_node("MatMul", ["f", "fc.wt"], ["m"]),
                       helper.make_node("Add", ["m", "fc.b"], ["y"])],
        "add+matmul": [helper.make_node("MatMul", ["f", "fc.wt"], ["m"]),
                       helper.make_node("Add", ["fc.b", "m"], ["y"])],
        "none": [helper.make_node("Relu", ["f"], ["y"])],
    }[head]
    out = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["n", C if head == "none" else K])
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["n", 3, 8, 8])],
                              [out], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(model, full_check=True)
    return model


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


def _pooled(x: np.ndarray) -> np.ndarray:
    """The reference: the pooled features, computed apart from the graph (conv, relu, mean)."""
    conv = ort.InferenceSession(_graph("none").SerializeToString(), providers=["CPUExecutionProvider"])
    return conv.run(None, {"x": x})[0]


@pytest.mark.parametrize("head, op", [("gemm", "Gemm"), ("matmul", "MatMul"), ("matmul+add", "MatMul+Add"),
                                      ("add+matmul", "MatMul+Add")])
def test_each_head_form_is_cut_at_the_pooled_features(head: str, op: str) -> None:
    model = _graph(head)
    found = find_classifier_head(model, "g.onnx")
    assert (found.op, found.features, found.width) == (op, "f", C)
    cut = cut_classifier(model, found, "g.onnx")
    onnx.checker.check_model(cut, full_check=True)
    x = RNG.standard_normal((3, 3, 8, 8)).astype(np.float32)
    got = _run(cut, x)
    assert [o.name for o in cut.graph.output] == ["embedding"] and got.shape == (3, C)
    np.testing.assert_allclose(got, np.maximum(_pooled(x), 0), rtol=1e-6)  # Relu of a Relu: the same
    bias = 0 if head == "matmul" else FC_B
    np.testing.assert_allclose(got @ FC_W.T + bias, _run(model, x), rtol=1e-5, atol=1e-5)  # what the classifier read
    assert {t.name for t in cut.graph.initializer} == {"conv.w"}  # the classifier's weights dropped
    assert not {"Gemm", "MatMul", "Add"} & {n.op_type for n in cut.graph.node}


@pytest.mark.parametrize("opset", [11, 18])
def test_the_normalisation_takes_the_opset_s_form(opset: int) -> None:
    """ReduceSum's axes are an input from opset 13 and an attribute before: both run and equal
    v / max(||v||, eps), and onnxruntime's symbolic shape inference (quantize's first step) reads it."""
    from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

    model = _graph("gemm", opset=opset)
    cut = cut_classifier(model, find_classifier_head(model), "g.onnx")
    raw = _run(cut, x := RNG.standard_normal((2, 3, 8, 8)).astype(np.float32))
    append_l2_normalize(cut)
    onnx.checker.check_model(cut, full_check=True)
    reduce = next(n for n in cut.graph.node if n.op_type == "ReduceSum")
    assert len(reduce.input) == (2 if opset >= 13 else 1)
    inferred = SymbolicShapeInference.infer_shapes(cut, auto_merge=True)
    assert [d.dim_value for d in inferred.graph.output[0].type.tensor_type.shape.dim][1:] == [C]
    got = _run(cut, x)
    np.testing.assert_allclose(got, l2_normalize(raw), rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, rtol=1e-6)
    assert [o.name for o in cut.graph.output] == ["embedding"]


def test_a_zero_vector_stays_zero() -> None:
    np.testing.assert_array_equal(l2_normalize(np.zeros((1, 4))), np.zeros((1, 4)))


@pytest.mark.parametrize("head, pool, needle", [
    ("none", "GlobalAveragePool", "g.onnx has no classifier to cut: its output 'y' comes from Relu"),
    ("gemm", "GlobalMaxPool", "g.onnx: its final Gemm does not read globally pooled features"),
])
def test_a_graph_without_a_pooled_classifier_is_refused(head: str, pool: str, needle: str) -> None:
    with pytest.raises(OnnxModelError, match=needle):
        find_classifier_head(_graph(head, pool=pool), "g.onnx")
