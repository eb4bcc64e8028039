"""``bench`` takes image-input files (issue 22, item 3): they take any image size, so the benchmark
feeds them one photo of a fixed size, the shipped portrait decoded to uint8 (decoding is not
timed); the same file as float and as INT8 are measured side by side and agree on it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from resnet_deploy.bench.inputs import benchmark_photo, read_model_file, write_input
from resnet_deploy.image_input import ImageInputSpec, preprocessing_for
from resnet_deploy.export.image_input import image_input_stage, photo_variants
from resnet_deploy.graph.io import load_onnx, save_onnx
from resnet_deploy_cli.main import app

runner = CliRunner()
pytestmark = pytest.mark.filterwarnings("ignore:.*seeded random initialisation")


@pytest.fixture(scope="module")
def r20_image(resnet20_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    model = load_onnx(resnet20_onnx)
    path = tmp_path_factory.mktemp("bench_image") / "r20_image.onnx"
    save_onnx(image_input_stage(model, ImageInputSpec(preprocessing_for(model)))[0], path)
    return path


def test_image_input_file_is_fed_the_photo(r20_image: Path, tmp_path: Path) -> None:
    f = read_model_file(r20_image)
    photo = benchmark_photo()
    assert f.takes_images and f.dtype == "uint8" and f.shape == (None, *photo.shape) and photo.shape == (600, 512, 3)
    x = np.load(write_input((2, *f.shape[1:]), f.dtype, tmp_path / "x.npy"))
    assert x.dtype == np.uint8 and x.shape == (2, 600, 512, 3) and (x[0] == photo).all() and (x[1] == photo).all()


def test_bench_measures_float_and_int8_image_input_files(r20_image: Path, tmp_path: Path) -> None:
    calibration = tmp_path / "calib"
    calibration.mkdir()
    for i, (_, photo) in enumerate(photo_variants()):
        photo.save(calibration / f"{i}.png")
    int8 = tmp_path / "r20_image_int8.onnx"
    assert runner.invoke(app, ["quantize", str(r20_image), "-c", str(calibration), "-o", str(int8)]).exit_code == 0
    report = tmp_path / "b.json"
    r = runner.invoke(app, ["bench", str(r20_image), str(int8), "--providers", "cpu", "--iterations", "3",
                            "--rounds", "1", "--warmup", "1", "--json", str(report)])
    assert r.exit_code == 0, r.output
    data = json.loads(report.read_text())
    assert "preprocessing in the graph" in data["baseline_note"]  # no eager PyTorch baseline for uint8 images
    records = {rec["engine"]: rec for rec in data["results"]}
    assert set(records) == {"r20_image", "r20_image_int8"}
    assert records["r20_image"]["max_rel_error"] == 0.0 and records["r20_image"]["p50_ms"] > 0
    # The INT8 file on the same photo: close to fp32 (quantize's own bound for an INT8 classifier).
    assert 0 < records["r20_image_int8"]["max_rel_error"] <= 5e-2 and records["r20_image_int8"]["precision"] == "int8"


def test_bench_refuses_what_an_image_input_file_cannot_take(r20_image: Path, resnet20_onnx: Path,
                                                            tmp_path: Path) -> None:
    np.savez(tmp_path / "val.npz", x=np.zeros((4, 3, 32, 32), np.float32), y=np.zeros(4, np.int64))
    cases = [
        (["bench", str(r20_image), "--providers", "openvino"], "OpenVINO's antialiased Resize"),
        (["bench", str(r20_image), "--eval-data", str(tmp_path / "val.npz")], "takes images as they are"),
        (["bench", str(r20_image), str(resnet20_onnx)], "files must share the input shape"),
    ]
    for args, needle in cases:
        result = runner.invoke(app, [*args, "--iterations", "2", "--rounds", "1"])
        lines = result.output.strip().splitlines()
        assert result.exit_code == 1 and len(lines) == 1 and needle in lines[0], (args, result.output)


def test_tune_image_input_file(r20_image: Path, tmp_path: Path) -> None:
    """tune makes INT8 from the classifier inside (the float preprocessing put back and verified),
    measures every candidate on the photo, and the profile's model takes images."""
    from resnet_deploy import Predictor
    from resnet_deploy.image_input import is_image_input
    from resnet_deploy.preprocess.labels import sample_image_path

    calibration = tmp_path / "calib"
    calibration.mkdir()
    for i, (_, photo) in enumerate(photo_variants()):
        photo.save(calibration / f"{i}.png")
    profile = tmp_path / "r20.profile.json"
    r = runner.invoke(app, ["tune", str(r20_image), "-o", str(profile), "-c", str(calibration), "--providers", "cpu",
                            "--duration", "1", "--rounds", "1"])
    assert r.exit_code == 0, r.output
    data = json.loads(profile.read_text())
    assert {row["engine"] for row in data["candidates"]} >= {"ort-fp32", "ort-int8"}, data["candidates"]
    with Predictor.from_profile(profile) as predictor:
        assert predictor.takes_images and is_image_input(load_onnx(predictor.model_path))
        with Predictor(r20_image, provider="cpu") as fp32:
            assert predictor.predict(sample_image_path())[0][0].index == fp32.predict(sample_image_path())[0][0].index


def test_tune_refuses_what_an_image_input_file_cannot_take(r20_image: Path, tmp_path: Path) -> None:
    np.savez(tmp_path / "val.npz", x=np.zeros((4, 3, 32, 32), np.float32), y=np.zeros(4, np.int64))
    cases = [
        (["--providers", "openvino"], "OpenVINO's antialiased Resize"),
        (["--eval-data", str(tmp_path / "val.npz")], "takes images as they are"),
    ]
    for args, needle in cases:
        result = runner.invoke(app, ["tune", str(r20_image), "-o", str(tmp_path / "p.json"), "--duration", "1", *args])
        lines = result.output.strip().splitlines()
        assert result.exit_code == 1 and len(lines) == 1 and needle in lines[0], (args, result.output)
