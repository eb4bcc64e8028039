"""Triton repository entries, validated with Triton's own ModelConfig protobuf."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from google.protobuf import text_format
from onnx import TensorProto, helper
from tritonclient.grpc import model_config_pb2 as mc
from typer.testing import CliRunner

from resnet_deploy.export import ExportOptions, export_model
from resnet_deploy.pipeline import ort_outputs
from resnet_deploy.triton import TritonOptions, write_triton_repository
from resnet_deploy_cli.main import app


def parse(entry_path: Path) -> mc.ModelConfig:
    return text_format.Parse((entry_path / "config.pbtxt").read_text(), mc.ModelConfig())


def onnx_dims(v: onnx.ValueInfoProto) -> list[int]:
    return [d.dim_value if d.HasField("dim_value") else -1 for d in v.type.tensor_type.shape.dim]


@pytest.mark.parametrize("provider, kind", [("cpu", mc.ModelInstanceGroup.KIND_CPU), ("cuda", mc.ModelInstanceGroup.KIND_GPU),
                                            ("tensorrt", mc.ModelInstanceGroup.KIND_GPU), ("openvino", mc.ModelInstanceGroup.KIND_CPU)])
def test_config_matches_the_onnx_file(tmp_path: Path, resnet20_onnx: Path, provider: str, kind: int) -> None:
    entry = write_triton_repository(resnet20_onnx, tmp_path / "repo", TritonOptions(provider=provider, instances=2, fp16=provider == "tensorrt"))
    cfg = parse(entry.path)
    model = onnx.load(str(entry.model_path))
    assert cfg.name == "resnet20" and cfg.platform == "onnxruntime_onnx" and cfg.max_batch_size == 32
    assert [i.name for i in cfg.input] == [i.name for i in model.graph.input]
    assert list(cfg.input[0].dims) == onnx_dims(model.graph.input[0])[1:] == [3, 32, 32]
    assert cfg.input[0].data_type == mc.TYPE_FP32 and cfg.input[0].format == mc.ModelInput.FORMAT_NCHW
    assert [o.name for o in cfg.output] == ["logits"] and list(cfg.output[0].dims) == [10]
    assert list(cfg.dynamic_batching.preferred_batch_size) == [4, 8, 16, 32]
    assert cfg.dynamic_batching.max_queue_delay_microseconds == 100
    assert cfg.instance_group[0].count == 2 and cfg.instance_group[0].kind == kind
    accel = cfg.optimization.execution_accelerators
    if provider == "tensorrt":
        trt = accel.gpu_execution_accelerator[0]
        assert trt.name == "tensorrt" and trt.parameters["precision_mode"] == "FP16"
    elif provider == "openvino":
        assert accel.cpu_execution_accelerator[0].name == "openvino"
    else:
        assert not accel.gpu_execution_accelerator and not accel.cpu_execution_accelerator
    # The copied model is the same model.
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32), dtype=np.float32)
    np.testing.assert_array_equal(ort_outputs(model, x), ort_outputs(onnx.load(str(resnet20_onnx)), x))


def test_static_batch_model_gets_full_dims(tmp_path: Path) -> None:
    path = tmp_path / "static.onnx"
    export_model(ExportOptions("resnet20", static_batch=4), path)
    entry = write_triton_repository(path, tmp_path / "repo", TritonOptions(name="r20_static"))
    cfg = parse(entry.path)
    assert cfg.max_batch_size == 0 and list(cfg.input[0].dims) == [4, 3, 32, 32]
    assert not cfg.HasField("dynamic_batching")
    assert entry.path.name == "r20_static"


def test_existing_entry_needs_force(tmp_path: Path, resnet20_onnx: Path) -> None:
    repo = tmp_path / "repo"
    write_triton_repository(resnet20_onnx, repo, TritonOptions())
    config = (repo / "resnet20" / "config.pbtxt").read_text()
    runner = CliRunner()
    r = runner.invoke(app, ["triton", str(resnet20_onnx), "-r", str(repo), "--instances", "3"])
    assert r.exit_code == 1 and "already exists; pass --force" in r.output
    assert (repo / "resnet20" / "config.pbtxt").read_text() == config
    r = runner.invoke(app, ["triton", str(resnet20_onnx), "-r", str(repo), "--instances", "3", "--force"])
    assert r.exit_code == 0 and parse(repo / "resnet20").instance_group[0].count == 3
    assert sorted(p.name for p in repo.iterdir()) == ["resnet20"]  # no staging or backup left


def test_bad_input(tmp_path: Path, resnet20_onnx: Path) -> None:
    two_inputs = tmp_path / "two.onnx"
    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["c"])], "g",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [1, 3, 4, 4]), helper.make_tensor_value_info("b", TensorProto.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [1, 3, 4, 4])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(two_inputs))
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    runner = CliRunner()
    cases = [
        (["triton", str(two_inputs), "-r", str(tmp_path / "r1")], "one image input"),
        (["triton", str(resnet20_onnx), "-r", str(not_a_folder)], "not a folder"),
        (["triton", str(resnet20_onnx), "-r", str(tmp_path / "r2"), "--provider", "tpu"], "unknown provider"),
        (["triton", str(resnet20_onnx), "-r", str(tmp_path / "r3"), "--fp16"], "tensorrt provider only"),
        (["triton", str(resnet20_onnx), "-r", str(tmp_path / "r4"), "--name", "../evil"], "invalid model name"),
    ]
    for args, needle in cases:
        r = runner.invoke(app, args)
        print(r.output)
        assert r.exit_code == 1 and needle in r.output and "Traceback" not in r.output
    assert not (tmp_path / "r1" / "two").exists()
