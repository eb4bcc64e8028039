"""INT8 of a features file (``export --features``, output ``embedding``): judged by the cosine
similarity of its embeddings to fp32's, never by a top-1 agreement that means nothing without
classes; the block-wise paths refuse labelled data they could not score."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import resnet_deploy as rd
from resnet_deploy.diagnostics.int8 import quantize
from resnet_deploy.export.exporter import ExportOptions, export_model
from resnet_deploy.precision.options import QuantizeOptions


@pytest.fixture(scope="module")
def features(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("features")
    export_model(ExportOptions("resnet20", features=True), folder / "r20_features.onnx")
    rng = np.random.default_rng(0)
    np.save(folder / "calib.npy", rng.standard_normal((12, 3, 32, 32), dtype=np.float32))  # 9 calibrate, 3 held out
    np.savez(folder / "eval.npz", x=rng.standard_normal((8, 3, 32, 32), dtype=np.float32), y=rng.integers(0, 10, 8))
    return {"model": folder / "r20_features.onnx", "calib": folder / "calib.npy", "eval": folder / "eval.npz"}


def test_a_features_file_reports_cosine_similarity(features: dict[str, Path], tmp_path: Path) -> None:
    result = quantize(features["model"], features["calib"], tmp_path / "q.onnx")
    report = result.to_dict()
    print(report["cosine_min"], report["cosine_mean"], report["heldout"])
    assert report["top1_agreement"] is None and report["heldout"]["top1_agreement"] is None
    assert 0.9 < report["cosine_min"] <= report["cosine_mean"] <= 1.0 + 1e-9
    assert 0.9 < report["heldout"]["cosine_min"] <= report["heldout"]["cosine_mean"] <= 1.0 + 1e-9
    assert "cosine similarity to fp32 min" in result.fidelity.describe() and "top-1" not in result.fidelity.describe()


def test_a_classifier_still_reports_top1(resnet20_onnx: Path, features: dict[str, Path], tmp_path: Path) -> None:
    report = quantize(resnet20_onnx, features["calib"], tmp_path / "q.onnx").to_dict()
    assert 0.0 <= report["top1_agreement"] <= 1.0 and report["cosine_min"] is None and report["cosine_mean"] is None


@pytest.mark.parametrize("options", [QuantizeOptions(max_accuracy_drop=1.0), QuantizeOptions(sensitivity=True)],
                         ids=["accuracy-aware", "sensitivity"])
def test_labels_are_refused_for_a_features_file(features: dict[str, Path], tmp_path: Path,
                                                options: QuantizeOptions) -> None:
    from dataclasses import replace

    output = None if options.sensitivity else tmp_path / "q.onnx"
    with pytest.raises(rd.InputError, match="outputs embeddings \\(a features file\\): it has no classes to score"):
        quantize(features["model"], features["calib"], output, replace(options, eval_data=features["eval"]))
    assert not list(tmp_path.iterdir())


def test_the_command_says_cosine_and_refuses_labels_in_one_line(features: dict[str, Path], tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from resnet_deploy_cli.main import app

    runner = CliRunner()
    base = ["quantize", str(features["model"]), "-c", str(features["calib"])]
    result = runner.invoke(app, [*base, "-o", str(tmp_path / "q.onnx")])
    flat = " ".join(result.output.split())  # rich wraps at the terminal width
    assert result.exit_code == 0 and "cosine similarity to fp32 min" in flat and "top-1" not in flat, result.output
    result = runner.invoke(app, [*base, "--sensitivity", "--eval-data", str(features["eval"])])
    lines = result.output.strip().splitlines()
    assert (result.exit_code == 1 and lines[-1].startswith("error: ")
            and "has no classes to score" in lines[-1]), result.output
