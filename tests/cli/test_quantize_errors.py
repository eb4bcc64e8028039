"""quantize: bad models and calibration data end in one line and no file.

The rows run in-process (``tests/_cli_cases.py``); ``tests/cli/test_e2e.py`` runs a few through the
real entry point.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .._cli_cases import Alias, Case, check_alias, check_bad_input

CASES = [
    Case("quantize-nan-weights", ["quantize", "{nan.onnx}", "-c", "{calib.npy}", "-o", "{out}"],
         ["nan.onnx", "weight 'conv1.weight' holds NaN"]),
    Case("quantize-inf-weights", ["quantize", "{inf.onnx}", "-c", "{calib.npy}", "-o", "{out}"],
         ["inf.onnx", "weight 'fc.bias' holds NaN or Inf"]),
    Case("quantize-sensitivity-eval-too-big",
         ["quantize", "{model}", "-c", "{calib.npy}", "--sensitivity", "--eval-data", "{big.npz}"],
         ["big.npz holds 10,001 evaluation samples; at most 10,000", "pass a subset"], []),
    Case("quantize-eval-label-negative",
         ["quantize", "{model}", "-c", "{calib.npy}", "-o", "{out}", "--eval-data", "{labelneg.npz}",
          "--max-accuracy-drop", "1"],
         ["labelneg.npz", "class indices 0..9", "e.g. -1"]),
    Case("quantize-shape", ["quantize", "{model}", "-c", "{shape.npy}", "-o", "{out}"],
         ["shape.npy", "[4, 3, 24, 32]", "[N, 3, 32, 32]"]),
    Case("quantize-dtype", ["quantize", "{model}", "-c", "{dtype.npy}", "-o", "{out}"],
         ["dtype.npy", "int64", "float32"]),
    Case("quantize-empty-folder",
         ["quantize", "{model}", "-c", "{emptydir}", "-o", "{out}"], ["no images", "emptydir"]),
    Case("quantize-already", ["quantize", "{int8.onnx}", "-c", "{calib.npy}", "-o", "{out}"],
         ["already quantized", "int8.onnx"]),
    Case("quantize-no-folder",
         ["quantize", "{model}", "-c", "{calib.npy}", "-o", "{tmp}/missing/q.onnx"], ["does not exist"], []),
    Case("quantize-corrupt", ["quantize", "{corrupt.onnx}", "-c", "{calib.npy}", "-o", "{out}"], ["corrupt.onnx"]),
    Case("quantize-unfusable", ["quantize", "{tanh.onnx}", "-c", "{calib.npy}", "-o", "{out}"],
         ["tanh.onnx holds onnxruntime-specific ops", "FusedConv(Tanh)", "standard ONNX"]),
    Case("quantize-sensitivity-with-output",
         ["quantize", "{model}", "-c", "{calib.npy}", "--sensitivity", "-o", "{out}"],
         ["--sensitivity writes no model; drop --output"]),
    # an option no path would use is refused, not ignored
    Case("quantize-eval-data-alone",
         ["quantize", "{model}", "-c", "{calib.npy}", "-o", "{out}", "--eval-data", "{labelneg.npz}"],
         ["--eval-data is used by --max-accuracy-drop or --sensitivity"]),
    Case("quantize-sensitivity-with-drop",
         ["quantize", "{model}", "-c", "{calib.npy}", "--sensitivity", "--max-accuracy-drop", "1"],
         ["--max-accuracy-drop chooses a model to write and --sensitivity writes none"], []),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_table(case: Case, files: dict[str, Path], tmp_path: Path) -> None:
    check_bad_input(case, files, tmp_path)


ALIASES = [
    Alias("quantize-output-is-calibration", ["quantize", "m.onnx", "-c", "cal.npy", "-o", "cal.npy"],
          ["--output cal.npy", "--calibration cal.npy"]),
    Alias("quantize-report-in-calibration-folder",
          ["quantize", "m.onnx", "-c", "imgs", "-o", "q.onnx", "--report", "imgs/a.png"],
          ["--report imgs/a.png", "inside the input --calibration imgs"]),
]


@pytest.mark.parametrize("case", ALIASES, ids=[c.id for c in ALIASES])
def test_output_never_aliases_an_input(case: Alias, alias_sources: Path, tmp_path: Path) -> None:
    check_alias(case, alias_sources, tmp_path)
