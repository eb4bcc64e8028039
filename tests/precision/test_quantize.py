"""INT8 and FP16: the accuracy cost measured on a real dataset with a trained model."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

import resnet_deploy as rd
from resnet_deploy.export.exporter import ExportOptions, export_model, int8_path
from resnet_deploy.graph.io import load_onnx, op_counts, read_metadata
from resnet_deploy.export.pipeline import ort_outputs
from resnet_deploy.precision.quantize import RECIPES, convert_fp16, quantize_file, quantize_model

from .._digits import IMAGE_SIZE


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, digits_trained: dict) -> dict:
    """ResNet-20 trained on the digits (once per session), exported fp32 + INT8 in one step."""
    folder = tmp_path_factory.mktemp("digits")
    x_train, x_test, y_test = digits_trained["x_train"], digits_trained["x_test"], digits_trained["y_test"]
    ckpt = digits_trained["ckpt"]
    model = rd.create_model("resnet20")
    model.load_state_dict(torch.load(ckpt, weights_only=True))
    model.eval()
    calib = folder / "calib.npy"
    np.save(calib, x_train[:128])
    fp32 = folder / "digits.onnx"
    result = export_model(ExportOptions("resnet20", weights=ckpt, image_size=IMAGE_SIZE,
                                        labels=[str(i) for i in range(10)]), fp32)
    result.int8 = quantize_file(fp32, int8_path(fp32), calib)  # what export --int8 composes
    return {"fp32": fp32, "int8": result.int8.path, "result": result, "x_test": x_test, "y_test": y_test,
            "calib": calib, "model": model, "ckpt": ckpt}


def _accuracy(model_path: Path, x: np.ndarray, y: np.ndarray) -> float:
    logits = ort_outputs(load_onnx(model_path), x)
    return float(np.mean(logits.argmax(1) == y))


def test_int8_accuracy_on_held_out_digits(trained: dict) -> None:
    fp32_acc = _accuracy(trained["fp32"], trained["x_test"], trained["y_test"])
    int8_acc = _accuracy(trained["int8"], trained["x_test"], trained["y_test"])
    ratio = trained["int8"].stat().st_size / trained["fp32"].stat().st_size
    print(f"held-out accuracy on {len(trained['y_test'])} digits: fp32 {fp32_acc:.2%}, int8 {int8_acc:.2%}; "
          f"size ratio {ratio:.2f}")
    assert fp32_acc >= 0.93  # the training worked
    assert int8_acc >= fp32_acc - 0.01  # INT8 within 1 point
    assert ratio <= 0.4
    model = load_onnx(trained["int8"])
    assert op_counts(model)["QuantizeLinear"] > 0 and op_counts(model)["DequantizeLinear"] > 0
    meta = read_metadata(model)
    assert meta["precision"] == "int8" and meta["architecture"] == "resnet20" and meta["labels"][3] == "3"


@pytest.mark.parametrize("method", ["minmax", "entropy", "percentile"])
def test_quantize_file_methods(trained: dict, tmp_path: Path, method: str) -> None:
    out = tmp_path / f"{method}.onnx"
    result = quantize_file(trained["fp32"], out, trained["calib"], method=method, max_samples=64)
    acc = _accuracy(out, trained["x_test"], trained["y_test"])
    print(method, result.to_dict(), f"accuracy {acc:.2%}")
    assert result.samples == 48 and result.heldout.samples == 16  # one in four held out to check the file
    assert result.size_after < 0.4 * result.size_before
    assert result.top1_agreement >= 0.95
    assert acc >= 0.9


def test_quantize_from_an_image_folder(trained: dict, tmp_path: Path) -> None:
    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    x = trained["x_test"][:12]
    for i, sample in enumerate(x):  # undo the normalisation, save real PNGs
        gray = np.clip((sample[0] * 0.35 + 0.3) * 255, 0, 255).astype(np.uint8)
        Image.fromarray(gray).convert("RGB").save(folder / f"{i:02d}.png")
    result = quantize_file(trained["fp32"], tmp_path / "q.onnx", folder)
    assert result.samples == 9 and result.heldout.samples == 3


def test_fp16_conversion_keeps_io_fp32(trained: dict) -> None:
    model = load_onnx(trained["fp32"])
    fp16, kept = convert_fp16(model)
    x = trained["x_test"][:64]
    logits16 = ort_outputs(fp16, x)
    logits32 = ort_outputs(model, x)
    agreement = float(np.mean(logits16.argmax(1) == logits32.argmax(1)))
    print("fp16 top-1 agreement", agreement, "ops kept fp32:", kept)
    assert fp16.graph.input[0].type.tensor_type.elem_type == 1 and fp16.graph.output[0].type.tensor_type.elem_type == 1
    assert agreement >= 0.98


def test_optimize_to_fp16_for_gpus(trained: dict, tmp_path: Path) -> None:
    from resnet_deploy.export.optimize import optimize_file

    out = tmp_path / "fp16.onnx"
    result = optimize_file(trained["fp32"], out, "cuda", precision="fp16")
    stage = result.stages[-2]
    print(stage.note, result.max_rel_error)
    assert stage.name == "fp16" and "float32 inputs/outputs" in stage.note
    # the summary is the fp16 file's error, not the fp32 passes' (it printed 0.00e+00)
    assert result.max_rel_error == stage.details["max_rel_error"] > 1e-5
    model = load_onnx(out)
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer)
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    acc16 = _accuracy(out, trained["x_test"], trained["y_test"])
    acc32 = _accuracy(trained["fp32"], trained["x_test"], trained["y_test"])
    print(f"held-out accuracy fp32 {acc32:.2%}, fp16 {acc16:.2%}")
    assert acc16 >= acc32 - 0.005
    with pytest.raises(rd.InputError, match="fp16 is for GPU providers"):
        optimize_file(trained["fp32"], tmp_path / "x.onnx", "cpu", precision="fp16")


def test_bad_calibration_data(trained: dict, tmp_path: Path) -> None:
    out = tmp_path / "q.onnx"
    cases = []
    wrong_shape = tmp_path / "shape.npy"
    np.save(wrong_shape, np.zeros((4, 3, 32, 32), np.float32))
    cases.append((wrong_shape, r"has shape \[4, 3, 32, 32\]; the model expects \[N, 3, 16, 16\]"))
    wrong_dtype = tmp_path / "dtype.npy"
    np.save(wrong_dtype, np.zeros((4, 3, 16, 16), np.float64))
    cases.append((wrong_dtype, "holds float64; expected float32"))
    pickled = tmp_path / "obj.npy"
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    cases.append((pickled, "pickled objects are refused"))
    empty = tmp_path / "empty"
    empty.mkdir()
    cases.append((empty, "no images"))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.jpg").write_text("not a jpeg")
    cases.append((broken, "not a readable image"))
    cases.append((tmp_path / "missing", "not found"))
    for source, match in cases:
        with pytest.raises(rd.InputError, match=match):
            quantize_file(trained["fp32"], out, source)
        assert not out.exists()


def test_already_quantized_is_refused(trained: dict, tmp_path: Path) -> None:
    with pytest.raises(rd.OnnxModelError, match="already quantized"):
        quantize_file(trained["int8"], tmp_path / "q.onnx", trained["calib"])


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_every_recipe_keeps_held_out_accuracy(trained: dict, name: str) -> None:
    """Each INT8 recipe builds the graph it names and stays within 1 point of fp32 on real data."""
    recipe = RECIPES[name]
    fp32 = load_onnx(trained["fp32"])
    quantized = quantize_model(fp32, np.load(trained["calib"])[:64], recipe=recipe, source="digits").model
    ops = op_counts(quantized)
    if recipe.fmt == "qoperator":
        assert ops["QLinearConv"] == 19 and ops["Conv"] == 0
    else:
        assert ops["QLinearConv"] == 0 and ops["Conv"] == 19 and ops["DequantizeLinear"] > ops["QuantizeLinear"] > 0
    if recipe.fmt == "qoperator":  # the residual Adds: quantized (onnxruntime's contrib op) or left in float
        assert ops["com.microsoft.QLinearAdd"] == (9 if recipe.all_ops else 0)
        assert ops["Add"] == (0 if recipe.all_ops else 9)
    x, y = trained["x_test"], trained["y_test"]
    fp32_acc = float(np.mean(ort_outputs(fp32, x).argmax(1) == y))
    int8_acc = float(np.mean(ort_outputs(quantized, x).argmax(1) == y))
    print(f"{name} ({recipe.describe()}): held-out accuracy fp32 {fp32_acc:.2%}, int8 {int8_acc:.2%}")
    assert read_metadata(quantized)["quantization"].startswith(f"static {recipe.describe()}")
    assert int8_acc >= fp32_acc - 0.01


def test_int8_on_the_openvino_runtime_keeps_accuracy(trained: dict) -> None:
    """The fastest CPU path measured here (OpenVINO runtime on the QDQ file) on real data."""
    pytest.importorskip("openvino")
    from resnet_deploy.runtime import Predictor, SessionConfig

    x, y = trained["x_test"], trained["y_test"]
    fp32_acc = _accuracy(trained["fp32"], x, y)
    with Predictor(trained["int8"], config=SessionConfig(provider="openvino", threads=2, static_batch=1)) as p:
        assert p.backend == "openvino-runtime"
        ov_acc = float(np.mean(p.run(x).argmax(1) == y))
    print(f"held-out accuracy: fp32 {fp32_acc:.2%}, int8 on the OpenVINO runtime {ov_acc:.2%}")
    assert ov_acc >= fp32_acc - 0.01


@pytest.fixture(scope="module")
def bad_calibration(trained: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A calibration that hurts: the training inputs at half their scale (a wrong std in the
    calibration's preprocessing), so every activation range is set too narrow."""
    folder = tmp_path_factory.mktemp("bad-calibration")
    calib = folder / "half.npy"
    np.save(calib, np.ascontiguousarray(np.load(trained["calib"])[:64] * 0.5))
    eval_data = folder / "eval.npz"
    np.savez(eval_data, x=trained["x_test"], y=trained["y_test"])
    return {"calib": calib, "eval": eval_data}


def test_accuracy_aware_int8_keeps_the_fewest_blocks_in_float(trained: dict, bad_calibration: dict,
                                                              tmp_path: Path) -> None:
    from resnet_deploy.precision.accuracy_aware import quantize_accuracy_aware

    result = quantize_accuracy_aware(trained["fp32"], bad_calibration["calib"], bad_calibration["eval"],
                                     max_drop_points=0.5)
    quantized = result.model
    for t in result.trials:
        print(t.float_blocks, f"accuracy {t.accuracy:.2%}, drop {t.drop_points:.2f} points")
    assert result.trials[0].float_blocks == [] and result.trials[0].drop_points > 1.0  # the calibration really hurts
    assert result.chosen.drop_points <= 0.5
    # The fewest: every shorter prefix of the ranking was tried and missed the bound.
    assert len(result.trials) == len(result.chosen.float_blocks) + 1
    assert all(t.drop_points > 0.5 for t in result.trials[:-1])
    assert result.chosen.float_blocks == ["stem"]  # the input's range is what the half-scale calibration gets wrong
    assert read_metadata(quantized)["float_blocks"] == "stem"
    out = tmp_path / "aware.onnx"
    onnx.save(quantized, str(out))
    fp32_acc = _accuracy(trained["fp32"], trained["x_test"], trained["y_test"])
    assert _accuracy(out, trained["x_test"], trained["y_test"]) >= fp32_acc - 0.005
    assert op_counts(quantized)["QuantizeLinear"] > 0  # the rest is still INT8


def test_sensitivity_ranks_the_block_that_hurts_first(trained: dict, bad_calibration: dict) -> None:
    from resnet_deploy.diagnostics.sensitivity import block_sensitivity

    result = block_sensitivity(trained["fp32"], bad_calibration["calib"], eval_data=bad_calibration["eval"])
    for t in result.rows:
        print(t.quantized, t.drop_points, t.max_rel_error)
    assert len(result.rows) == 11 and result.metric == "accuracy drop"
    assert result.rows[0].quantized == ["stem"] and result.rows[0].drop_points > 1.0
    assert all(len(t.quantized) == 1 and len(t.float_blocks) == 10 for t in result.rows)
    assert max(t.drop_points for t in result.rows[1:]) <= 0.5
    # Without labels the cost is the logits' error on the calibration inputs.
    unlabelled = block_sensitivity(trained["fp32"], trained["calib"], max_samples=32)
    assert unlabelled.metric == "logits max rel error" and unlabelled.fp32_accuracy is None
    errors = [t.max_rel_error for t in unlabelled.rows]
    assert (errors == sorted(errors, reverse=True)
            and 0 < errors[-1] <= errors[0] < unlabelled.full_int8.max_rel_error * 1.5)


def test_keep_float_names_real_blocks(trained: dict) -> None:
    with pytest.raises(rd.InputError, match="has no block layer9.9; its blocks: stem, layer1.0"):
        quantize_model(load_onnx(trained["fp32"]), np.load(trained["calib"])[:8], keep_float=["layer9.9"])


def test_cli_accuracy_aware_and_its_errors(trained: dict, bad_calibration: dict, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from resnet_deploy_cli.main import app

    runner = CliRunner()
    out = tmp_path / "aware.onnx"
    base = ["quantize", str(trained["fp32"]), "-c", str(bad_calibration["calib"])]
    result = runner.invoke(app, [*base, "-o", str(out), "--eval-data", str(bad_calibration["eval"]),
                                 "--max-accuracy-drop", "0.5"])
    print(result.output)
    assert result.exit_code == 0 and out.exists()
    assert "kept in float: stem (1 of 11)" in result.output
    # what the float block costs, timed by the benchmark side by side
    flat = " ".join(result.output.split())  # rich wraps at the terminal width
    assert ("speed cost (onnxruntime CPU, batch 1" in flat
            and re.search(r"with the float blocks [0-9.]+ ms \([0-9.]+x all-INT8", flat))
    result = runner.invoke(app, [*base, "-o", str(tmp_path / "x.onnx"), "--max-accuracy-drop", "0.5"])
    assert result.exit_code == 1 and result.output.strip().splitlines()[-1] == (
        "error: --max-accuracy-drop needs --eval-data: labelled data to measure the drop on")
    assert not (tmp_path / "x.onnx").exists()
    result = runner.invoke(app, [*base, "--sensitivity", "--eval-data", str(bad_calibration["eval"])])
    print(result.output)
    rows = [line.split("│")[1].strip() for line in result.output.splitlines() if line.startswith("│")]
    assert result.exit_code == 0 and rows[0] == "stem" and rows[-1] == "all blocks" and len(rows) == 12


def test_a_cpu_target_file_is_quantized_from_its_portable_graph(trained: dict, tmp_path: Path) -> None:
    """optimize --target cpu, then quantize: the FusedConv are unfused (and verified) first, the
    result says so, and INT8 keeps the accuracy it keeps from the plain export."""
    from resnet_deploy.export.optimize import optimize_file

    cpu = tmp_path / "cpu.onnx"
    optimize_file(trained["fp32"], cpu, "cpu")
    assert op_counts(load_onnx(cpu))["com.microsoft.FusedConv"] == 9
    out = tmp_path / "q.onnx"
    result = quantize_file(cpu, out, trained["calib"], max_samples=64)
    print(result.notes)
    assert len(result.notes) == 1 and "cpu.onnx holds onnxruntime's FusedConv" in result.notes[0]
    assert "9 FusedConv unfused to Conv + Add + Relu" in result.notes[0] and result.to_dict()["notes"] == result.notes
    quantized = load_onnx(out)
    assert all(n.domain in ("", "ai.onnx") for n in quantized.graph.node) and op_counts(quantized)["Conv"] == 19
    assert result.top1_agreement >= 0.95
    x, y = trained["x_test"], trained["y_test"]
    fp32_acc, int8_acc = _accuracy(trained["fp32"], x, y), _accuracy(out, x, y)
    print(f"held-out accuracy fp32 {fp32_acc:.2%}, int8 from the cpu file {int8_acc:.2%}")
    assert int8_acc >= fp32_acc - 0.01
    plain = quantize_file(trained["fp32"], tmp_path / "plain.onnx", trained["calib"], max_samples=64)
    assert plain.notes == []


def test_a_fixed_batch_model_is_calibrated_in_batches_of_its_size(trained: dict, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """export --static-batch 8, then quantize on 13 samples (9 calibrate, 4 are held out): onnxruntime's
    calibrator gets batches of 8 (the last filled up from the start), the held-out check runs in
    batches of 8 too, and the INT8 model keeps the fixed batch and the accuracy."""
    from resnet_deploy.precision import quantize as q

    static = tmp_path / "static8.onnx"
    export_model(ExportOptions("resnet20", weights=trained["ckpt"], image_size=IMAGE_SIZE, static_batch=8), static)
    calib = tmp_path / "calib13.npy"
    np.save(calib, np.load(trained["calib"])[:13])
    shapes: list[tuple[int, ...]] = []
    real = q._Reader.get_next

    def record(self: q._Reader) -> dict[str, np.ndarray] | None:
        batch = real(self)
        if batch is not None:
            shapes.append(next(iter(batch.values())).shape)
        return batch

    monkeypatch.setattr(q._Reader, "get_next", record)
    out = tmp_path / "q8.onnx"
    result = quantize_file(static, out, calib)
    assert result.samples == 9 and result.heldout.samples == 4 and result.top1_agreement >= 0.9  # 9 calibrate, 4 check
    assert shapes and {s[0] for s in shapes} == {8}
    quantized = load_onnx(out)
    assert quantized.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 8
    n = len(trained["y_test"]) // 8 * 8
    x, y = trained["x_test"][:n], trained["y_test"][:n]

    def accuracy(model: onnx.ModelProto) -> float:
        logits = np.concatenate([ort_outputs(model, x[i : i + 8]) for i in range(0, n, 8)])
        return float(np.mean(logits.argmax(1) == y))

    fp32_acc, int8_acc = accuracy(load_onnx(static)), accuracy(quantized)
    print(f"held-out accuracy, batch fixed at 8: fp32 {fp32_acc:.2%}, int8 {int8_acc:.2%}")
    assert int8_acc >= fp32_acc - 0.01


def test_speed_cost_is_none_when_an_engine_fails(trained: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failed benchmark engine gives no speed cost (a made-up 0 ms used to divide by zero)."""
    from types import SimpleNamespace

    from resnet_deploy.diagnostics.speed_cost import speed_cost
    from resnet_deploy.bench import run as bench_run
    from resnet_deploy.bench.schema import Record

    def failing(options, *, plan, **_kwargs):
        return SimpleNamespace(records=[Record(e.name, "cpu", "fp32", 1, p50_ms=None if i == 2 else 1.0,
                                               error="boom" if i == 2 else None)
                                        for i, e in enumerate(plan.engines)])

    import resnet_deploy.bench as bench_package

    monkeypatch.setattr(bench_run, "run_benchmark", failing)
    monkeypatch.setattr(bench_package, "run_benchmark", failing, raising=False)  # the package caches lazy attributes
    model = load_onnx(trained["fp32"])
    assert speed_cost(Path(trained["fp32"]), model, model, None) is None
