"""``resnet-deploy quantize``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from resnet_deploy.calibration import DEFAULT_MAX_SAMPLES

from ._errors import CLIError, handle_errors
from ._options import ModelPath, Output, Report
from ._output import check_report, console, human_bytes, progress, write_json

Calibration = Annotated[Optional[Path], typer.Option("--calibration", "-c", help="A folder of images, or a .npy of preprocessed float32 [N, 3, H, W] inputs.")]
Method = Annotated[str, typer.Option("--method", help="Calibration method: minmax, entropy or percentile.")]
MaxSamples = Annotated[int, typer.Option("--max-samples", help="Use at most this many calibration samples.")]


def print_quantize_result(result, output: Path) -> None:
    ratio = result.size_after / result.size_before
    console.print(
        f"[green]wrote[/green] {output}: int8 QDQ, {result.method} on {result.samples} samples; "
        f"{human_bytes(result.size_before)} -> {human_bytes(result.size_after)} ({ratio:.2f}x); "
        f"on the calibration inputs: top-1 agreement with fp32 {result.top1_agreement:.1%}, "
        f"max rel error {result.max_rel_error:.2e}"
    )


@handle_errors
def quantize(
    model: ModelPath,
    calibration: Calibration = None,
    output: Output = None,
    method: Method = "minmax",
    per_channel: Annotated[bool, typer.Option("--per-channel/--per-tensor", help="Weight scales per output channel (default) or per tensor.")] = True,
    max_samples: MaxSamples = DEFAULT_MAX_SAMPLES,
    report: Report = None,
) -> None:
    """Static INT8 quantization (QDQ) with onnxruntime's tools, calibrated on real data."""
    from resnet_deploy.quantize import quantize_file

    if output is None:
        raise CLIError("--output is required")
    if calibration is None:
        raise CLIError("--calibration is required: a folder of images or a .npy file")
    if output.resolve() == model.resolve():
        raise CLIError(f"--output must differ from the input file: {output}")
    check_report(report)
    result = quantize_file(model, output, calibration, method=method, per_channel=per_channel, max_samples=max_samples, progress=progress)
    print_quantize_result(result, output)
    if report is not None:
        write_json(report, result.to_dict())
