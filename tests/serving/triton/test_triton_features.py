"""Triton entries of features files: ``config.pbtxt`` answers ``embedding`` ``[C]`` on either
backend, with float or uint8 image input, validated with Triton's own ModelConfig protobuf."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from resnet_deploy.export.exporter import ExportOptions, export_model
from resnet_deploy.export.pipeline import ort_outputs
from resnet_deploy.serving.triton import TritonOptions, write_triton_repository

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # random weights: the numbers are the point


def _config(entry: Path) -> mc.ModelConfig:
    return text_format.Parse((entry / "config.pbtxt").read_text(), mc.ModelConfig())


@pytest.mark.parametrize("backend", ["onnxruntime", "python"])
def test_a_features_entry_answers_the_embedding(tmp_path: Path, resnet20_features_onnx: Path, backend: str) -> None:
    entry = write_triton_repository(resnet20_features_onnx, tmp_path / "repo", TritonOptions(backend=backend))
    cfg = _config(entry.path)
    print(text_format.MessageToString(cfg))
    assert [(o.name, list(o.dims), o.data_type) for o in cfg.output] == [("embedding", [64], mc.TYPE_FP32)]
    assert list(cfg.input[0].dims) == [3, 32, 32] and cfg.max_batch_size == 32
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32), dtype=np.float32)
    served = ort_outputs(onnx.load(str(entry.model_path)), x)
    np.testing.assert_array_equal(served, ort_outputs(onnx.load(str(resnet20_features_onnx)), x))
    np.testing.assert_allclose(np.linalg.norm(served, axis=1), 1.0, rtol=1e-5)


def test_an_image_input_features_entry_takes_uint8_pixels(tmp_path: Path) -> None:
    path = tmp_path / "fi.onnx"
    export_model(ExportOptions("resnet20", features=True, image_input=True), path)
    cfg = _config(write_triton_repository(path, tmp_path / "repo", TritonOptions()).path)
    assert [(i.name, list(i.dims), i.data_type) for i in cfg.input] == [("image", [-1, -1, 3], mc.TYPE_UINT8)]
    assert [(o.name, list(o.dims)) for o in cfg.output] == [("embedding", [64])]
