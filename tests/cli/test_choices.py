"""Fixed-choice options: the CLI's Enums hold the library's values, list them in --help, and
refuse anything else in one ``error:`` line (exit 1), in any case."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from resnet_deploy.bench.options import MODES
from resnet_deploy.graph.passes import TARGETS
from resnet_deploy.precision.quantize import CALIBRATION_METHODS, TARGET_CPUS
from resnet_deploy_cli._choices import CalibrationMethod, FilePrecision, Mode, Target, TargetCpu
from resnet_deploy_cli.main import app


def test_the_enums_hold_the_library_values() -> None:
    assert tuple(m.value for m in Mode) == MODES
    assert tuple(m.value for m in Target) == tuple(TARGETS)
    assert tuple(m.value for m in CalibrationMethod) == CALIBRATION_METHODS
    assert tuple(m.value for m in FilePrecision) == ("fp32", "fp16")
    assert tuple(m.value for m in TargetCpu) == TARGET_CPUS


@pytest.mark.parametrize("argv, message", [
    (["bench", "--model", "resnet20", "--mode", "fast"], "unknown mode 'fast'; expected latency or throughput"),
    (["tune", "m.onnx", "-o", "p.json", "--mode", "fast"], "unknown mode 'fast'; expected latency or throughput"),
    (["optimize", "m.onnx", "-o", "o.onnx", "--target", "tpu"],
     "unknown target 'tpu'; expected one of portable, cpu, cuda"),
    (["optimize", "m.onnx", "-o", "o.onnx", "--precision", "int8"], "unknown precision 'int8'; expected fp32 or fp16"),
    (["quantize", "m.onnx", "-c", "c.npy", "-o", "q.onnx", "--method", "kl"],
     "unknown calibration method 'kl'; expected one of minmax, entropy, percentile"),
    (["tune", "m.onnx", "-o", "p.json", "--target-cpu", "avx2"],
     "unknown target CPU 'avx2'; expected one of auto, vnni, any"),
])
def test_a_value_outside_the_choices_is_one_line(argv: list[str], message: str) -> None:
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 1 and result.output == f"error: {message}\n", result.output


@pytest.mark.parametrize("command, flag, shown", [
    ("bench", "--mode", "[latency|throughput]"), ("tune", "--mode", "[latency|throughput]"),
    ("optimize", "--target", "[portable|cpu|cuda]"), ("quantize", "--method", "[minmax|entropy|percentile]"),
    ("quantize", "--target-cpu", "[auto|vnni|any]"), ("export", "--target-cpu", "[auto|vnni|any]"),
    ("tune", "--target-cpu", "[auto|vnni|any]"),
])
def test_help_lists_the_choices(command: str, flag: str, shown: str) -> None:
    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and shown in result.output, result.output


def test_bench_help_groups_its_options() -> None:
    result = CliRunner().invoke(app, ["bench", "--help"], env={"COLUMNS": "200"})
    for panel in ("What to measure", "How to measure", "Data", "Reports", "Cache"):
        assert panel in result.output
