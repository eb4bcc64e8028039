"""``bench`` of features files: the eager baseline rebuilds a classifier, so the first file is
the baseline and every other file's rel err is its embedding's against that fp32 embedding."""

from __future__ import annotations

from pathlib import Path

import pytest

from resnet_deploy.bench.options import BenchOptions
from resnet_deploy.bench.run import run_benchmark
from resnet_deploy.export.features_stage import FeaturesRequest
from resnet_deploy.export.optimize import optimize_file

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # random weights: the numbers are the point


def test_the_first_features_file_is_the_baseline_of_the_embeddings(resnet20_features_onnx: Path, resnet20_onnx: Path,
                                                                   tmp_path: Path) -> None:
    cut = optimize_file(resnet20_onnx, tmp_path / "cut.onnx", features=FeaturesRequest(normalize=True)).path
    out = run_benchmark(BenchOptions(files=[resnet20_features_onnx, cut], iterations=4, rounds=2, warmup=1))
    records = {r.engine: r for r in out.records}
    for r in out.records:
        print(r.engine, r.max_rel_error, r.error)
    assert set(records) == {"resnet20_features", "cut"}  # no eager classifier beside the embeddings
    assert out.baseline == "resnet20_features" and "outputs embeddings" in out.baseline_note
    assert records["resnet20_features"].max_rel_error == 0.0
    # optimize --features of the same weights: the same embedding, and the column says so
    assert (records["cut"].error is None and records["cut"].max_rel_error is not None
            and records["cut"].max_rel_error <= 1e-5)
