"""``tune`` on a features file: its candidates (INT8 quantized from the normalised embedding
included) are measured and judged on the embedding, the profile embeds as the file does, and the
"use it" line points to ``Predictor.embed`` and ``batch``, not to ``predict`` (and both answer
with the file's vectors)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from resnet_deploy.runtime import Predictor
from resnet_deploy.tune import REFERENCE, TuneOptions, tune

from .._cli_cases import run_cli

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # random weights: the numbers are the point

FAST = {"duration": 0.3, "rounds": 2}


def test_tune_judges_the_embedding_and_the_profile_embeds(resnet20_features_onnx: Path, tmp_path: Path,
                                                          sample_image: Path) -> None:
    result = tune(TuneOptions(model=resnet20_features_onnx, output=tmp_path / "p.json", providers=["cpu"],
                              precisions=["fp32", "int8"], threads=2, **FAST))
    records = {v.record.engine: v.record for v in result.verdicts}
    for r in records.values():
        print(f"{r.engine:16} p50 {r.p50_ms or 0:7.3f} ms  rel err {r.max_rel_error}  {r.error or ''}")
    assert records[REFERENCE].error is None and records[REFERENCE].max_rel_error == 0.0
    int8 = records["ort-int8"]  # quantize's shape inference read the normalisation (it crashed on torch's)
    assert int8.error is None and 0 < int8.max_rel_error < 0.1
    assert result.embeds and ".embed(images)" in result.usage() and "resnet-deploy batch --profile" in result.usage()
    assert "resnet-deploy predict" not in result.usage()
    with Predictor.from_profile(result.profile_path) as tuned, \
            Predictor(resnet20_features_onnx, provider="cpu") as plain:
        got, want = tuned.embed([sample_image]), plain.embed([sample_image])
        assert tuned.output_kind == "embedding"
    assert got.shape == (1, 64)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # What the use-it line says, as it says it: batch --profile writes the same vectors.
    ran = run_cli("batch", "--profile", result.profile_path, sample_image, "-o", tmp_path / "out")
    assert ran.returncode == 0, ran.stderr
    rows = pq.read_table(tmp_path / "out").to_pylist()
    assert [r["status"] for r in rows] == ["ok"]
    np.testing.assert_allclose(np.array([rows[0]["embedding"]], np.float32), want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("features, hint, not_hint", [
    (True, "resnet-deploy batch --profile", "resnet-deploy predict"),
    (False, "resnet-deploy predict --profile", "resnet-deploy batch"),
])
def test_the_use_it_line_names_what_the_file_answers(features: bool, hint: str, not_hint: str,
                                                     resnet20_features_onnx: Path,
                                                     resnet20_onnx: Path, tmp_path: Path) -> None:
    model = resnet20_features_onnx if features else resnet20_onnx
    result = run_cli("tune", model, "-o", tmp_path / "p.json", "--providers", "cpu", "--precision", "fp32",
                     "--duration", "0.2", "--rounds", "2")
    assert result.returncode == 0, result.stderr
    line = next(ln for ln in result.stdout.splitlines() if ln.startswith("use it:"))
    text = " ".join(result.stdout[result.stdout.index(line):].split())  # the console wraps at 80 columns
    assert hint in text and not_hint not in text, text
