"""tune: bad options and outputs end in one line and no profile.

The rows run in-process (``tests/_cli_cases.py``); ``tests/cli/test_e2e.py`` runs a few through the
real entry point.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .._cli_cases import TOO_MANY, Alias, Case, check_alias, check_bad_input

CASES = [
    Case("tune-threads-absurd", ["tune", "{model}", "-o", "{out}", "--threads", TOO_MANY], ["--threads", TOO_MANY]),
    Case("tune-derived-name-too-long", ["tune", "{model}", "-o", "{tmp}/" + "p" * 235 + ".json"],
         ["the model tune may write beside --output ppppp", "longer than the 255 bytes", "shorten --output"], []),
    Case("tune-duration-nan", ["tune", "{model}", "-o", "{out}", "--duration", "nan"],
         ["--duration must be a finite number"]),
    Case("tune-accuracy-drop-nan", ["tune", "{model}", "-o", "{out}", "--max-accuracy-drop", "nan"],
         ["--max-accuracy-drop", "nan"]),
    Case("tune-eval-label-too-big",
         ["tune", "{model}", "-o", "{out}", "--eval-data", "{label10.npz}", "-c", "{calib.npy}"],
         ["label10.npz", "class indices 0..9"]),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_table(case: Case, files: dict[str, Path], tmp_path: Path) -> None:
    check_bad_input(case, files, tmp_path)


ALIASES = [
    Alias("tune-output-is-eval-data", ["tune", "m.onnx", "-o", "val.npz", "--eval-data", "val.npz"],
          ["--output val.npz", "--eval-data val.npz"]),
    Alias("tune-model-file-beside-profile", ["tune", "p.ort-int8.onnx", "-o", "p.json"],
          ["the profile's model", "p.ort-int8.onnx", "the input MODEL"], ("hard", "p.ort-int8.onnx", "m.onnx")),
]


@pytest.mark.parametrize("case", ALIASES, ids=[c.id for c in ALIASES])
def test_output_never_aliases_an_input(case: Alias, alias_sources: Path, tmp_path: Path) -> None:
    check_alias(case, alias_sources, tmp_path)
