"""The OpenVINO runtime itself behind the Predictor: parity with eager PyTorch, static batches,
threads, and the rules every provider keeps (asked for by name, never a silent fallback)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("openvino")
torch = pytest.importorskip("torch")

import resnet_deploy as rd  # noqa: E402
from resnet_deploy.runtime import Predictor, SessionConfig, providers as providers_mod, resolve_provider  # noqa: E402
from resnet_deploy.runtime.openvino_native import OpenVINOSession, native_openvino_available  # noqa: E402
from resnet_deploy.graph.verify import compare  # noqa: E402

pytestmark = pytest.mark.skipif(not native_openvino_available(), reason="OpenVINO lists no CPU device here")

# The OpenVINO CPU plugin's fp32 convolutions differ from PyTorch's in summation order only.
FP32_RTOL = 1e-4
# bf16 keeps 8 mantissa bits (relative rounding 2^-9 = 2e-3 per operation); measured 2.9e-3 on
# ResNet-18 logits with random weights.
BF16_RTOL = 2e-2


@pytest.fixture(scope="module")
def eager(resnet18_onnx: Path) -> tuple[np.ndarray, np.ndarray]:
    x = np.random.default_rng(11).standard_normal((3, 3, 224, 224), dtype=np.float32)
    with torch.inference_mode():
        return x, rd.create_model("resnet18")(torch.from_numpy(x)).numpy()


@pytest.mark.parametrize(("precision", "rtol"), [(None, FP32_RTOL), ("BF16", BF16_RTOL)])
def test_matches_eager_pytorch(resnet18_onnx: Path, eager: tuple[np.ndarray, np.ndarray], precision: str | None,
                               rtol: float) -> None:
    if precision == "BF16" and "BF16" not in _capabilities():
        pytest.skip("this CPU has no bf16 support in OpenVINO")
    x, reference = eager
    with Predictor(resnet18_onnx,
                   config=SessionConfig(provider="openvino", threads=2, openvino_precision=precision)) as p:
        assert (p.provider, p.backend) == ("openvino", "openvino-runtime")
        parity = compare(p.run(x), reference, rtol=rtol)
    print("openvino runtime", precision or "FP32", parity.describe())
    assert parity.ok and parity.top1_agreement == 1.0


def test_static_batch_runs_any_batch_in_chunks(resnet18_onnx: Path, eager: tuple[np.ndarray, np.ndarray]) -> None:
    x, reference = eager
    with Predictor(resnet18_onnx, config=SessionConfig(provider="openvino", threads=2, static_batch=2)) as p:
        assert p.input_shape == (2, 3, 224, 224)
        assert p._session.get_inputs()[0].shape == [2, 3, 224, 224]  # compiled for batch 2 only
        out = p.run(x)  # 3 images: one chunk of 2, one padded chunk
        single = p.run(x[:1])
    assert out.shape == (3, 1000) and single.shape == (1, 1000)
    assert compare(out, reference, rtol=FP32_RTOL).ok
    np.testing.assert_allclose(single[0], out[0], rtol=0, atol=1e-5 * np.abs(out).max())


def test_auto_never_picks_the_runtime_unasked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(providers_mod, "openvino_plugin_devices", lambda: [])
    assert "openvino" in providers_mod.available_providers()
    assert resolve_provider("auto") != "openvino"
    assert resolve_provider("openvino") == "openvino"


def test_refused_by_name_when_absent(resnet20_onnx: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import resnet_deploy.runtime.openvino_native as native

    monkeypatch.setattr(providers_mod, "openvino_plugin_devices", lambda: [])
    monkeypatch.setattr(native, "native_openvino_available", lambda: False)
    with pytest.raises(rd.ProviderUnavailableError, match="provider 'openvino' is not available on this machine; "
                                                          "available: cpu"):
        Predictor(resnet20_onnx, provider="openvino")


def test_bad_settings_are_typed_errors(resnet20_onnx: Path, tmp_path: Path) -> None:
    with pytest.raises(rd.RuntimeBackendError, match="threads must be at least 1"):
        OpenVINOSession(resnet20_onnx, threads=0)
    with pytest.raises(rd.RuntimeBackendError, match="unknown OpenVINO precision 'int4'"):
        OpenVINOSession(resnet20_onnx, precision="int4")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x08\x07garbage")
    with pytest.raises(rd.RuntimeBackendError, match="OpenVINO could not compile the model"):
        OpenVINOSession(garbage)


def test_openvino_errors_keep_their_reason(tmp_path: Path) -> None:
    """OpenVINO writes where it raised before why ("Exception from src/inference/src/cpp/core.cpp:105:"
    alone, as the first line, told nothing): the locations are dropped, the reason kept."""
    from onnx import TensorProto, helper

    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x08\x07garbage")
    with pytest.raises(rd.RuntimeBackendError) as info:
        OpenVINOSession(garbage)
    assert "Unable to read the model" in str(info.value) and "Exception from" not in str(info.value), str(info.value)
    graph = helper.make_graph([helper.make_node("Mystery", ["x"], ["y"], domain="com.example")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("com.example", 1)])
    with pytest.raises(rd.RuntimeBackendError) as info:
        OpenVINOSession(model.SerializeToString())
    message = str(info.value)
    assert "No conversion rule found for operations: com.example.Mystery" in message, message
    assert "failed at src/" not in message and "\n" not in message
    # The same reason wrapped on one line by onnxruntime's OpenVINO EP, as its errors come.
    import openvino

    from resnet_deploy._errors import first_line

    try:
        openvino.Core().read_model(model=b"garbage", weights=None)
    except Exception as exc:  # noqa: BLE001 - OpenVINO's own RuntimeError
        wrapped = RuntimeError(f"[ONNXRuntimeError] : 1 : FAIL : OpenVINO-EP compile failed: {exc}")
    assert first_line(wrapped).endswith("compile failed: Unable to read the model. Please check if the model format is "
                                        "supported and model is correct."), first_line(wrapped)


def _capabilities() -> list[str]:
    import openvino

    return list(openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
