"""export: bad input to the model build (depths, checkpoints, labels, outputs) ends in one line and no file.

The rows run in-process (``tests/_cli_cases.py``); ``tests/cli/test_e2e.py`` runs a few through the
real entry point.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .._cli_cases import Alias, Case, check_alias, check_bad_input, run_cli

CASES = [
    Case("unknown-depth", ["export", "--depth", "19", "-o", "{out}"], ["no ResNet of depth 19", "valid depths"]),
    Case("unknown-model", ["export", "--model", "resnet19", "-o", "{out}"], ["unknown model 'resnet19'", "available"]),
    Case("missing-checkpoint", ["export", "--depth", "20", "-w", "{tmp}/nope.pth", "-o", "{out}"],
         ["checkpoint not found", "nope.pth"]),
    Case("empty-checkpoint", ["export", "--depth", "20", "-w", "{empty.pth}", "-o", "{out}"], ["empty", "empty.pth"]),
    Case("truncated-checkpoint",
         ["export", "--depth", "20", "-w", "{truncated.pth}", "-o", "{out}"], ["truncated.pth"]),
    Case("corrupt-checkpoint", ["export", "--depth", "20", "-w", "{corrupt.pth}", "-o", "{out}"], ["corrupt.pth"]),
    Case("malicious-checkpoint",
         ["export", "--depth", "20", "-w", "{malicious.pth}", "-o", "{out}"], ["refused", "malicious.pth"]),
    Case("wrong-keys-shapes", ["export", "--depth", "20", "-w", "{wrong.pth}", "-o", "{out}"],
         ["wrong.pth", "unexpected keys: bogus", "fc.weight (3, 64) vs (10, 64)"]),
    Case("no-output-folder", ["export", "--depth", "20", "-o", "{tmp}/missing/x.onnx"],
         ["does not exist", "missing"], []),
    Case("output-is-folder", ["export", "--depth", "20", "-o", "{tmp}"], ["is a folder"], []),
    Case("export-num-classes-huge", ["export", "--depth", "20", "--num-classes", str(10**12), "-o", "{out}"],
         ["--num-classes must be between 1 and 100,000", str(10**12)]),
    Case("export-int8-bad-calib", ["export", "--depth", "20", "--int8", "-c", "{shape.npy}", "-o", "{out}"],
         ["shape.npy", "[N, 3, 32, 32]"], ["{out}", "{tmp}/out_int8.onnx"]),
    *[Case(f"export-{name.removesuffix('.pth')}-checkpoint",
           ["export", "--depth", "20", "-w", "{" + name + "}", "-o", "{out}"],
           [name, "entry 'fc.weight' is a " + what])
      for name, what in (("sparse.pth", "sparse tensor (torch.sparse_coo"),
                         ("sparsecsr.pth", "sparse tensor (torch.sparse_csr"),
                         ("quantized.pth", "quantized tensor"), ("meta.pth", "meta tensor"),
                         ("complex.pth", "complex tensor"))],
    # found by a new user's first hour: misleading words, silently ignored flags, untyped exits
    Case("export-text-checkpoint", ["export", "--depth", "20", "-w", "{text.pth}", "-o", "{out}"],
         ["not a checkpoint", "text.pth", "neither torch.save's zip format nor a pickle"]),
    Case("export-model-and-depth", ["export", "--depth", "20", "--model", "resnet32", "-o", "{out}"],
         ["give --model or --depth/--plain, not both"]),
    Case("export-labels-count", ["export", "--depth", "20", "--labels", "{labels3.txt}", "-o", "{out}"],
         ["--labels", "labels3.txt", "has 3 names for 10 classes"]),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_table(case: Case, files: dict[str, Path], tmp_path: Path) -> None:
    check_bad_input(case, files, tmp_path)


ALIASES = [
    Alias("export-output-is-weights", ["export", "--depth", "20", "-w", "t.pth", "-o", "t.pth"],
          ["--output t.pth", "--weights t.pth"]),
    Alias("export-output-hardlink-weights", ["export", "--depth", "20", "-w", "t.pth", "-o", "hard.pth"],
          ["hard.pth", "--weights t.pth"], ("hard", "hard.pth", "t.pth")),
    Alias("export-output-symlink-labels", ["export", "--depth", "20", "--labels", "labels.txt", "-o", "sym.onnx"],
          ["sym.onnx", "--labels labels.txt"], ("sym", "sym.onnx", "labels.txt")),
    Alias("export-default-output-is-weights", ["export", "--depth", "20", "-w", "resnet20.onnx"],
          ["--output resnet20.onnx", "--weights resnet20.onnx"], ("hard", "resnet20.onnx", "t.pth")),
    Alias("export-int8-file-is-calibration", ["export", "--depth", "20", "--int8", "-c", "cal.npy", "-o", "e.onnx"],
          ["e_int8.onnx", "--calibration cal.npy"], ("hard", "e_int8.onnx", "cal.npy")),
    Alias("export-report-is-labels",
         ["export", "--depth", "20", "--labels", "labels.txt", "--report", "labels.txt", "-o", "e.onnx"],
          ["--report labels.txt", "--labels labels.txt"]),
]


@pytest.mark.parametrize("case", ALIASES, ids=[c.id for c in ALIASES])
def test_output_never_aliases_an_input(case: Alias, alias_sources: Path, tmp_path: Path) -> None:
    check_alias(case, alias_sources, tmp_path)


def test_unknown_model_gets_no_note_before_its_error(tmp_path: Path) -> None:
    result = run_cli("export", "--model", "resnet999", "-o", tmp_path / "x.onnx")
    assert result.returncode == 1 and "unknown model 'resnet999'" in result.stderr, result.stderr
    assert "randomly initialised" not in result.stdout + result.stderr
