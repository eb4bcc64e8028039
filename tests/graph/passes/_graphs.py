"""Tiny graphs built with onnx.helper, and a reference runner."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from resnet_deploy.export.pipeline import ort_outputs


def make_model(nodes: list[onnx.NodeProto], inits: dict[str, np.ndarray], in_shape: list, out_shape: list, *,
               ms: bool = False) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
        [numpy_helper.from_array(v.astype(np.float32), k) for k, v in inits.items()],
    )
    opsets = [helper.make_opsetid("", 18)] + ([helper.make_opsetid("com.microsoft", 1)] if ms else [])
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 9
    onnx.checker.check_model(model, full_check=True)
    return model


def bn_params(rng: np.random.Generator, c: int, prefix: str = "bn") -> dict[str, np.ndarray]:
    return {
        f"{prefix}_scale": rng.uniform(0.5, 1.5, c),
        f"{prefix}_bias": rng.normal(0, 0.1, c),
        f"{prefix}_mean": rng.normal(0, 0.2, c),
        f"{prefix}_var": rng.uniform(0.5, 1.5, c),
    }


def bn_node(inp: str, out: str, prefix: str = "bn", eps: float = 1e-5) -> onnx.NodeProto:
    return helper.make_node(
        "BatchNormalization", [inp, f"{prefix}_scale", f"{prefix}_bias", f"{prefix}_mean", f"{prefix}_var"],
        [out], epsilon=eps
    )


def run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    return ort_outputs(model, x)


def ops(model: onnx.ModelProto) -> list[str]:
    return [n.op_type for n in model.graph.node]


def copy(model: onnx.ModelProto) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    return out
