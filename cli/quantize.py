"""``resnet-deploy quantize``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from resnet_deploy.precision.calibration import DEFAULT_MAX_SAMPLES

from ._choices import CalibrationMethod, choice, metavar
from ._errors import CLIError, handle_errors
from ._options import Force, ModelPath, Report, TargetCpu
from ._output import check_report, console, err_console, human_bytes, progress, write_json

Calibration = Annotated[Optional[Path], typer.Option("--calibration", "-c", help="A folder of images, or a .npy of preprocessed float32 [N, 3, H, W] inputs.")]
Method = Annotated[str, typer.Option("--method", parser=choice(CalibrationMethod, "calibration method"), metavar=metavar(CalibrationMethod), help="Calibration method: minmax, entropy or percentile.")]
MaxSamples = Annotated[int, typer.Option("--max-samples", help="Use at most this many calibration samples.")]


EvalData = Annotated[Optional[Path], typer.Option("--eval-data", help="Labelled data: an .npz with x and y, or a folder of class-index subfolders of images.")]


def print_sensitivity(result) -> None:
    from rich.table import Table

    base = "" if result.fp32_accuracy is None else f"; fp32 accuracy {result.fp32_accuracy:.2%}"
    full = result.full_int8
    table = Table(title=f"INT8 sensitivity per block, quantized alone (cost: {result.metric}{base})", title_justify="left")
    for col in ("block", "accuracy", "drop (points)", "top-1 agreement", "max rel error"):
        table.add_column(col, justify="left" if col == "block" else "right")
    for t in [*result.rows, full]:
        name = "all blocks" if t is full else t.quantized[0]
        table.add_row(escape(name), "" if t.accuracy is None else f"{t.accuracy:.2%}", "" if t.drop_points is None else f"{t.drop_points:.2f}",
                      f"{t.top1_agreement:.1%}", f"{t.max_rel_error:.2e}")
    console.print(table)


def print_accuracy_aware(result) -> None:
    for t in result.trials:
        kept = escape(", ".join(t.float_blocks) or "none")
        console.print(f"  float blocks: {kept}: accuracy {t.accuracy:.2%}, drop {t.drop_points:.2f} points")
    chosen = result.chosen
    console.print(
        f"[green]kept in float[/green]: {escape(', '.join(chosen.float_blocks) or 'no block')} "
        f"({len(chosen.float_blocks)} of {len(chosen.float_blocks) + len(chosen.quantized)}); accuracy {chosen.accuracy:.2%} "
        f"against fp32 {result.fp32_accuracy:.2%} (drop {chosen.drop_points:.2f} <= {result.max_drop_points} points)"
    )
    if result.speed is not None:
        s = result.speed
        console.print(f"speed cost (onnxruntime CPU, batch {s.batch_size}, {s.threads} threads, p50 of {s.rounds} interleaved rounds): "
                      f"fp32 {s.fp32_ms:.2f} ms, INT8 every block {s.int8_ms:.2f} ms, with the float blocks {s.chosen_ms:.2f} ms "
                      f"({s.cost:.2f}x all-INT8, {s.fp32_ms / s.chosen_ms:.2f}x faster than fp32)"
                      + ("; unstable: the machine was busy, re-run with resnet-deploy bench before quoting" if s.unstable else ""))


def print_quantize_result(result, output: Path) -> None:
    ratio = result.size_after / result.size_before
    weights = "7-bit weights, any CPU" if result.int8_kernels == "any" else "8-bit weights, CPUs with VNNI"
    console.print(
        f"[green]wrote[/green] {escape(str(output))}: int8 QDQ ({weights}: int8_kernels {result.int8_kernels}), "
        f"{result.method} on {result.samples} samples; "
        f"{human_bytes(result.size_before)} -> {human_bytes(result.size_after)} ({ratio:.2f}x); "
        # A calibration that hurts (a wrong std, say) agrees with fp32 on its own inputs: 100% for a
        # half-scale calibration of the digits model that lost 14 points on held-out scans.
        f"on the {result.samples} inputs it was calibrated on (no test of accuracy: --eval-data DATA "
        f"--max-accuracy-drop POINTS measures that): top-1 agreement with fp32 {result.top1_agreement:.1%}, "
        f"max rel error {result.max_rel_error:.2e}"
    )
    if result.heldout is not None:  # (a failure was also warned about, in one line on stderr)
        console.print(f"held out of the calibration, on this CPU: {result.heldout.describe()}", markup=False)


@handle_errors
def quantize(
    model: ModelPath,
    calibration: Annotated[Path, typer.Option("--calibration", "-c", help="A folder of images, or a .npy of preprocessed float32 [N, 3, H, W] inputs.", show_default=False)],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Where to write the INT8 file. \\[required] unless --sensitivity", show_default=False)] = None,
    method: Method = "minmax",
    per_channel: Annotated[bool, typer.Option("--per-channel/--per-tensor", metavar="", help="Weight scales per output channel (default) or per tensor.")] = True,
    max_samples: MaxSamples = DEFAULT_MAX_SAMPLES,
    report: Report = None,
    force: Force = False,
    sensitivity: Annotated[bool, typer.Option("--sensitivity", metavar="", help="Quantize one block at a time and report each one's cost; writes no model.")] = False,
    eval_data: EvalData = None,
    max_accuracy_drop: Annotated[Optional[float], typer.Option("--max-accuracy-drop", help="Keep the most sensitive blocks in float until the accuracy drop on --eval-data is at most this many points.")] = None,
    target_cpu: TargetCpu = "auto",
) -> None:
    """Static INT8 quantization (QDQ) with onnxruntime's tools, calibrated on real data, for the CPUs of --target-cpu."""
    from resnet_deploy.precision.quantize import quantize_file

    if target_cpu != "auto" and (sensitivity or max_accuracy_drop is not None):
        raise CLIError("--target-cpu applies to plain quantize; --sensitivity and --max-accuracy-drop measure INT8 for this machine (auto)")
    if sensitivity:
        from resnet_deploy.diagnostics.sensitivity import block_sensitivity

        if output is not None:  # (as export refuses --calibration without --int8: no flag is silently ignored)
            raise CLIError("--sensitivity writes no model; drop --output (the table, and --report, are its output)")
        check_report(report)
        found = block_sensitivity(model, calibration, eval_data=eval_data, method=method, max_samples=max_samples, progress=progress)
        print_sensitivity(found)
        if report is not None:
            write_json(report, found.to_dict(), replace=force)
        return
    if output is None:
        raise CLIError("--output is required to write a model (only --sensitivity writes none)")
    check_report(report)
    if max_accuracy_drop is not None:
        if eval_data is None:
            raise CLIError("--max-accuracy-drop needs --eval-data: labelled data to measure the drop on")
        from resnet_deploy.diagnostics.sensitivity import quantize_accuracy_aware
        from resnet_deploy.graph.io import save_onnx

        quantized, aware = quantize_accuracy_aware(model, calibration, eval_data, max_drop_points=max_accuracy_drop, method=method,
                                                   max_samples=max_samples, measure_speed=True, progress=progress)
        save_onnx(quantized, output, replace=force)
        aware.path = output
        print_accuracy_aware(aware)
        console.print(f"[green]wrote[/green] {escape(str(output))}")
        if report is not None:
            write_json(report, aware.to_dict(), replace=force)
        return
    result = quantize_file(model, output, calibration, method=method, per_channel=per_channel, target_cpu=target_cpu,
                           max_samples=max_samples, progress=progress, force=force)
    for note in result.notes:
        err_console.print(f"note: {note}", markup=False, soft_wrap=True)
    print_quantize_result(result, output)
    if report is not None:
        write_json(report, result.to_dict(), replace=force)
