"""info: bad models end in one line; what it prints as JSON is strict JSON.

The rows run in-process (``tests/_cli_cases.py``); ``tests/cli/test_e2e.py`` runs a few through the
real entry point.
"""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest

import resnet_deploy as rd

from .._cli_cases import Case, check_bad_input, external_cases, run_cli, strict_json

CASES = [
    Case("info-missing", ["info", "{tmp}/nope.onnx"], ["ONNX file not found", "nope.onnx"], []),
    Case("info-corrupt", ["info", "{corrupt.onnx}"], ["corrupt.onnx"], []),
    Case("info-escape", ["info", "{escape.onnx}"], ["outside the model's folder"], []),
    Case("info-external-data-too-big", ["info", "{hugeext.onnx}"], ["hugeext.onnx holds 3.0 GiB with its external data",
                                                                    "at most 2 GiB"], []),
    Case("meta-mean-deep", ["info", "{deepmean.onnx}"],
         ["deepmean.onnx", "'mean' is JSON nested more than 32 levels"], []),
    *external_cases("info", [], []),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_table(case: Case, files: dict[str, Path], tmp_path: Path) -> None:
    check_bad_input(case, files, tmp_path)


def test_json_output_is_strict(files: dict[str, Path], tmp_path: Path) -> None:
    """No bare NaN/Infinity in any JSON we print or write: a value that is not finite is null."""
    model = onnx.load(str(files["model"]))
    entry = next(p for p in model.metadata_props if p.key == "verified_max_rel_error")
    entry.value = "NaN"
    nan_meta = tmp_path / "nan_meta.onnx"
    onnx.save(model, str(nan_meta))
    result = run_cli("info", nan_meta, "--json")
    assert result.returncode == 0, result.stderr
    assert strict_json(result.stdout)["metadata"]["verified_max_rel_error"] is None
    # bench: an engine whose output is NaN has a NaN error against the baseline.
    out = tmp_path / "b.json"
    result = run_cli("bench", files["model"], files["nan.onnx"], "--iterations", "2", "--rounds", "1", "--warmup", "0",
                     "--json", out)
    assert result.returncode == 0, result.stderr
    records = strict_json(out.read_text())["results"]
    assert [r["max_rel_error"] for r in records if r["engine"] == "nan"] == [None], records


def test_external_data_outside_is_never_read(files: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from onnx import external_data_helper

    from resnet_deploy.graph.io import load_onnx

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("external data was read")

    monkeypatch.setattr(external_data_helper, "load_external_data_for_model", forbidden)
    with pytest.raises(rd.OnnxModelError, match="outside the model's folder"):
        load_onnx(files["escape.onnx"])


@pytest.mark.parametrize(("name", "dtype"), [("int64.onnx", "int64"), ("seqin.onnx", "sequence(float32)")])
def test_info_describes_inputs_that_are_not_float_tensors(files: dict[str, Path], name: str, dtype: str) -> None:
    """info describes what predict refuses: an int64 or a sequence input is a type to show (a
    sequence used to end in "unexpected KeyError: 0")."""
    result = run_cli("info", files[name], "--json")
    assert result.returncode == 0, result.stderr
    assert strict_json(result.stdout)["inputs"] == [{"name": "x", "dtype": dtype, "shape": ["N", 3, 32, 32]}]
