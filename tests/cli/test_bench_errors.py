"""bench: bad options, models and evaluation data end in one line and no report.

The rows run in-process (``tests/_cli_cases.py``); ``tests/cli/test_e2e.py`` runs a few through the
real entry point.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .._cli_cases import TOO_MANY, Alias, Case, check_alias, check_bad_input

CASES = [
    Case("bench-threads-absurd", ["bench", "{model}", "--threads", TOO_MANY], ["--threads", TOO_MANY], []),
    Case("bench-duration-nan", ["bench", "{model}", "--duration", "nan"],
         ["--duration must be a finite number", "nan"], []),
    Case("bench-duration-inf", ["bench", "{model}", "--duration", "inf"],
         ["--duration must be a finite number", "inf"], []),
    # silent wrong results: labels that name no class scored 0% for every model, and were reported
    Case("bench-eval-label-too-big",
         ["bench", "{model}", "--eval-data", "{label10.npz}", "--iterations", "2", "--rounds", "1"],
         ["label10.npz", "class indices 0..9", "1 of 3 are outside", "e.g. 10"], []),
    Case("bench-eval-folder-label-too-big",
         ["bench", "{model}", "--eval-data", "{evaldir10}", "--iterations", "2", "--rounds", "1"],
         ["evaldir10", "class indices 0..9", "e.g. 10"], []),
    Case("bench-too-many-files", ["bench", *["{model}"] * 17],
         ["17 files on 1 provider(s) make 17 engines", "at most 16", "split them over several runs"], []),
    Case("bench-every-engine-failed",
         ["bench", "{runfail.onnx}", "--iterations", "2", "--rounds", "1", "--json", "{tmp}/b.json"],
         ["nothing was measured", "all 1 engine runs failed", "runfail b1", "no report was written"], []),
    Case("bench-string-eval-labels",
         ["bench", "{model}", "--eval-data", "{strlabels.npz}", "--iterations", "2", "--rounds", "1"],
         ["strlabels.npz", "integer class indices"], []),
    Case("bench-batch-0", ["bench", "--model", "resnet20", "-b", "0"], ["batch sizes must be at least 1"], []),
    Case("bench-batch-neg", ["bench", "--model", "resnet20", "-b", "1,-4"],
         ["batch sizes must be at least 1, received -4"], []),
    Case("bench-provider", ["bench", "--model", "resnet20", "--providers", "tensorrt"],
         ["provider 'tensorrt' is not available"], []),
    Case("bench-precision", ["bench", "--model", "resnet20", "--precision", "fp8"], ["unknown precision 'fp8'"], []),
    Case("bench-unwritable",
         ["bench", "--model", "resnet20", "--json", "{tmp}/missing/b.json"], ["does not exist"], []),
    Case("bench-int64-input", ["bench", "{int64.onnx}", "--iterations", "2", "--rounds", "1"],
         ["int64.onnx", "input 'x' is int64"], []),
    Case("bench-sequence-input", ["bench", "{seqin.onnx}", "--iterations", "2", "--rounds", "1"],
         ["seqin.onnx", "input 'x' is not a tensor"], []),
    Case("bench-model-and-depth", ["bench", "--depth", "20", "--model", "resnet32"],
         ["give --model or --depth/--plain, not both"], []),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_table(case: Case, files: dict[str, Path], tmp_path: Path) -> None:
    check_bad_input(case, files, tmp_path)


ALIASES = [
    Alias("bench-json-is-model", ["bench", "m.onnx", "--json", "m.onnx"], ["--json m.onnx", "MODEL m.onnx"]),
    Alias("bench-csv-is-eval-data", ["bench", "m.onnx", "--eval-data", "val.npz", "--csv", "val.npz"],
          ["--csv val.npz", "--eval-data val.npz"]),
    Alias("bench-plot-is-second-model", ["bench", "m.onnx", "ext.onnx", "--plot", "ext.onnx"],
          ["--plot ext.onnx", "MODEL ext.onnx"]),
]


@pytest.mark.parametrize("case", ALIASES, ids=[c.id for c in ALIASES])
def test_output_never_aliases_an_input(case: Alias, alias_sources: Path, tmp_path: Path) -> None:
    check_alias(case, alias_sources, tmp_path)
