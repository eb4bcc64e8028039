"""optimize: bad models and targets end in one line and no file; outputs are regular files with valid names.

The rows run in-process (``tests/_cli_cases.py``); ``tests/cli/test_e2e.py`` runs a few through the
real entry point.
"""

from __future__ import annotations

from pathlib import Path

import os

import numpy as np
import pytest

from .._cli_cases import Alias, Case, check_alias, check_bad_input, external_cases, note_lines, run_cli

CASES = [
    Case("optimize-corrupt", ["optimize", "{corrupt.onnx}", "-o", "{out}"], ["not a valid ONNX file", "corrupt.onnx"]),
    Case("optimize-truncated", ["optimize", "{truncated.onnx}", "-o", "{out}"], ["truncated.onnx"]),
    Case("optimize-empty", ["optimize", "{empty.onnx}", "-o", "{out}"], ["empty", "empty.onnx"]),
    Case("optimize-escape", ["optimize", "{escape.onnx}", "-o", "{out}"],
         ["outside the model's folder", "escape.onnx"]),
    Case("optimize-no-folder", ["optimize", "{model}", "-o", "{tmp}/missing/x.onnx"], ["does not exist"], []),
    Case("optimize-bad-target", ["optimize", "{model}", "-o", "{out}", "--target", "tpu"], ["unknown target 'tpu'"]),
    Case("optimize-portable-unfusable", ["optimize", "{tanh.onnx}", "-o", "{out}"],
         ["tanh.onnx holds onnxruntime-specific ops", "com.microsoft.FusedConv(Tanh) x1", "--target cpu"]),
    *external_cases("optimize", ["-o", "{out}"], ["{out}"]),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_table(case: Case, files: dict[str, Path], tmp_path: Path) -> None:
    check_bad_input(case, files, tmp_path)


ALIASES = [
    Alias("optimize-report-is-model", ["optimize", "m.onnx", "-o", "out.onnx", "--report", "m.onnx"],
          ["--report m.onnx", "MODEL m.onnx"]),
    Alias("optimize-output-via-dotdot", ["optimize", "m.onnx", "-o", "imgs/../m.onnx"],
          ["--output imgs/../m.onnx", "MODEL m.onnx"]),
    Alias("optimize-output-is-external-data", ["optimize", "ext.onnx", "-o", "ext.onnx.data"],
          ["ext.onnx.data", "external data"]),
    Alias("optimize-report-is-output", ["optimize", "m.onnx", "-o", "out.onnx", "--report", "./out.onnx"],
          ["--report out.onnx", "--output out.onnx", "same file"]),
]


@pytest.mark.parametrize("case", ALIASES, ids=[c.id for c in ALIASES])
def test_output_never_aliases_an_input(case: Alias, alias_sources: Path, tmp_path: Path) -> None:
    check_alias(case, alias_sources, tmp_path)


@pytest.mark.parametrize("kind", ["fifo-output", "fifo-report", "dev-null", "name-too-long"])
def test_output_must_be_a_regular_file_with_a_valid_name(kind: str, files: dict[str, Path], tmp_path: Path) -> None:
    """A FIFO or a device is refused, not replaced; a name over the limit is refused before any work."""
    fifo = tmp_path / "pipe.onnx"
    os.mkfifo(fifo)
    out = tmp_path / "out.onnx"
    args, needles = {
        "fifo-output": (["optimize", files["model"], "-o", fifo], ["not a regular file", "pipe.onnx"]),
        "fifo-report": (["optimize", files["model"], "-o", out, "--report", fifo], ["not a regular file", "pipe.onnx"]),
        "dev-null": (["export", "--depth", "20", "-o", "/dev/null"], ["not a regular file", "/dev/null"]),
        "name-too-long": (["optimize", files["model"], "-o", tmp_path / ("n" * 300 + ".onnx")],
                          ["longer than the 255 bytes"]),
    }[kind]
    result = run_cli(*args)
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and all(n in errors[0] for n in needles), result.stderr
    assert "... loading" not in result.stderr and "... simplifying" not in result.stderr  # refused before any work
    assert fifo.is_fifo() and Path("/dev/null").is_char_device()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe.onnx"]


def test_longest_valid_name_is_writable(files: dict[str, Path], tmp_path: Path) -> None:
    """A 250-byte name is valid; the temporary name beside it must not push it over 255."""
    out = tmp_path / ("n" * 245 + ".onnx")
    result = run_cli("optimize", files["model"], "-o", out, "--report", tmp_path / ("r" * 245 + ".json"))
    assert result.returncode == 0, result.stderr
    assert sorted(len(p.name) for p in tmp_path.iterdir()) == [250, 250]


def test_cpu_target_file_composes_with_portable_and_quantize(files: dict[str, Path], tmp_path: Path) -> None:
    """optimize --target cpu, then optimize (portable): standard ONNX only, same outputs; then
    quantize the cpu file: it works from the portable graph and says so in one note line."""
    from resnet_deploy.graph.io import load_onnx
    from resnet_deploy.export.pipeline import ort_outputs
    from resnet_deploy.graph.verify import compare

    cpu, portable, int8 = tmp_path / "cpu.onnx", tmp_path / "portable.onnx", tmp_path / "int8.onnx"
    assert run_cli("optimize", files["model"], "-o", cpu, "--target", "cpu").returncode == 0
    result = run_cli("optimize", cpu, "-o", portable)
    assert result.returncode == 0, result.stderr
    model = load_onnx(portable)
    assert {n.domain for n in model.graph.node} <= {"", "ai.onnx"} and "unfuse_fused_conv x9" in result.stdout
    x = np.random.default_rng(5).standard_normal((3, 3, 32, 32), dtype=np.float32)
    parity = compare(ort_outputs(model, x), ort_outputs(load_onnx(cpu), x), rtol=1e-4)
    assert parity.ok, parity.describe()
    result = run_cli("quantize", cpu, "-c", files["calib.npy"], "-o", int8)
    assert result.returncode == 0 and int8.is_file(), result.stderr
    notes = note_lines(result.stderr)
    assert (len(notes) == 1 and "cpu.onnx holds onnxruntime's FusedConv" in notes[0]
            and "portable graph" in notes[0]), result.stderr
    assert "top-1 agreement with fp32 100.0%" in " ".join(result.stdout.split())
    # --sensitivity (and --max-accuracy-drop) start from the same portable graph
    result = run_cli("quantize", cpu, "-c", files["calib.npy"], "--sensitivity")
    assert result.returncode == 0 and "portable graph" in result.stderr and "all blocks" in result.stdout, result.stderr
