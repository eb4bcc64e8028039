"""``quantize``'s one entry point: every option reaches every path, and a combination a path
would ignore is refused before any work."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import resnet_deploy as rd
from resnet_deploy.diagnostics.int8 import quantize
from resnet_deploy.precision.options import QuantizeOptions

PATHS = {
    "plain": {},
    "accuracy-aware": {"max_accuracy_drop": 100.0, "measure_speed": False},
    "sensitivity": {"sensitivity": True},
}


def weight_scale_shapes(model: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    """The shape of the scale of every int8 weight's DequantizeLinear (the int32 biases left out:
    their scale is the input's times the weight's)."""
    inits = {i.name: i for i in model.graph.initializer}
    return {n.input[0]: tuple(numpy_helper.to_array(inits[n.input[1]]).shape) for n in model.graph.node
            if n.op_type == "DequantizeLinear" and n.input[0] in inits
            and inits[n.input[0]].data_type == onnx.TensorProto.INT8}


@pytest.fixture
def quantizer_outputs(monkeypatch: pytest.MonkeyPatch) -> list[onnx.ModelProto]:
    """Every model onnxruntime's quantizer writes during the test (the sensitivity table's trials
    are never saved): the real quantize_static runs, and its output is read back."""
    import onnxruntime.quantization as ort_quantization

    real = ort_quantization.quantize_static
    made: list[onnx.ModelProto] = []

    def record(model_input, model_output, *args, **kwargs):
        real(model_input, model_output, *args, **kwargs)
        made.append(onnx.load(str(model_output)))

    monkeypatch.setattr(ort_quantization, "quantize_static", record)
    return made


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("int8-data")
    rng = np.random.default_rng(0)
    np.save(folder / "calib.npy", rng.standard_normal((4, 3, 32, 32), dtype=np.float32))
    np.savez(folder / "eval.npz", x=rng.standard_normal((8, 3, 32, 32), dtype=np.float32), y=rng.integers(0, 10, 8))
    return {"calib": folder / "calib.npy", "eval": folder / "eval.npz"}


@pytest.mark.parametrize("per_channel", [False, True], ids=["per-tensor", "per-channel"])
@pytest.mark.parametrize("path", list(PATHS))
def test_per_channel_reaches_every_path(resnet20_onnx: Path, data: dict[str, Path], tmp_path: Path,
                                        quantizer_outputs: list[onnx.ModelProto], path: str, per_channel: bool) -> None:
    eval_data = None if path == "plain" else data["eval"]
    options = QuantizeOptions(per_channel=per_channel, max_samples=4, eval_data=eval_data, **PATHS[path])
    output = None if path == "sensitivity" else tmp_path / "q.onnx"
    result = quantize(resnet20_onnx, data["calib"], output, options)
    assert result.path == output if output else not list(tmp_path.iterdir())
    made = [onnx.load(str(output))] if output else []
    assert len(quantizer_outputs) == (12 if path == "sensitivity" else 1)  # all 11 blocks, then each one alone
    assert len(weight_scale_shapes(quantizer_outputs[0])) == 20  # 19 convolutions and fc, all INT8
    for model in [*quantizer_outputs, *made]:
        shapes = weight_scale_shapes(model)
        assert shapes
        if per_channel:  # one scale per output channel: 16, 32 or 64 for the convolutions, 10 for fc
            assert all(len(s) == 1 and s[0] in (10, 16, 32, 64) for s in shapes.values()), shapes
        else:
            assert all(s == () for s in shapes.values()), shapes


@pytest.mark.parametrize("options, output, message", [
    (QuantizeOptions(sensitivity=True), "q.onnx", "--sensitivity writes no model; drop --output"),
    (QuantizeOptions(sensitivity=True, max_accuracy_drop=1.0), None, "--max-accuracy-drop chooses a model to write"),
    (QuantizeOptions(), None, "--output is required to write a model"),
    (QuantizeOptions(eval_data=Path("e.npz")), "q.onnx", "--eval-data is used by --max-accuracy-drop or --sensitivity"),
    (QuantizeOptions(max_accuracy_drop=1.0), "q.onnx", "--max-accuracy-drop needs --eval-data"),
    (QuantizeOptions(max_accuracy_drop=-1.0, eval_data=Path("e.npz")), "q.onnx", "must be >= 0 points, received -1.0"),
    (QuantizeOptions(target_cpu="any", sensitivity=True), None, "--target-cpu applies to plain quantize"),
    (QuantizeOptions(method="kl"), "q.onnx", "unknown calibration method 'kl'"),
    (QuantizeOptions(target_cpu="avx2"), "q.onnx", "unknown target CPU 'avx2'"),
])
def test_a_combination_a_path_would_ignore_is_refused(options: QuantizeOptions, output: str | None, message: str,
                                                      tmp_path: Path) -> None:
    # The model does not exist: the options are refused before anything is read.
    with pytest.raises(rd.InputError, match=message.replace("(", r"\(")):
        quantize(tmp_path / "missing.onnx", tmp_path / "c.npy", output and tmp_path / output, options)
    assert not list(tmp_path.iterdir())
