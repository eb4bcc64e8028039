"""``resnet-deploy quantize``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from resnet_deploy.precision.calibration import DEFAULT_MAX_SAMPLES

from ._choices import CalibrationMethod, choice, metavar
from ._errors import handle_errors
from ._options import Force, ModelPath, Report, TargetCpu
from ._output import check_report, console, err_console, escape, human_bytes, progress, write_json

Calibration = Annotated[Optional[Path], typer.Option(
    "--calibration", "-c", help="A folder of images, or a .npy of preprocessed float32 [N, 3, H, W] inputs.")]
Method = Annotated[str, typer.Option(
    "--method", parser=choice(CalibrationMethod, "calibration method"), metavar=metavar(CalibrationMethod),
    help="Calibration method: minmax, entropy or percentile.")]
MaxSamples = Annotated[int, typer.Option("--max-samples", help="Use at most this many calibration samples.")]


EvalData = Annotated[Optional[Path], typer.Option(
    "--eval-data", help="Labelled data: an .npz with x and y, or a folder of class-index subfolders of images.")]


def print_sensitivity(result) -> None:
    from rich.table import Table

    base = "" if result.fp32_accuracy is None else f"; fp32 accuracy {result.fp32_accuracy:.2%}"
    full = result.full_int8
    table = Table(title="INT8 sensitivity per block, quantized alone "
                        f"({result.weights} weights; cost: {result.metric}{base})", title_justify="left")
    for col in ("block", "accuracy", "drop (points)", "top-1 agreement", "max rel error"):
        table.add_column(col, justify="left" if col == "block" else "right")
    for t in [*result.rows, full]:
        name = "all blocks" if t is full else t.quantized[0]
        table.add_row(escape(name), "" if t.accuracy is None else f"{t.accuracy:.2%}",
                      "" if t.drop_points is None else f"{t.drop_points:.2f}",
                      "" if t.top1_agreement is None else f"{t.top1_agreement:.1%}", f"{t.max_rel_error:.2e}")
    console.print(table)


def print_accuracy_aware(result) -> None:
    for t in result.trials:
        kept = escape(", ".join(t.float_blocks) or "none")
        console.print(f"  float blocks: {kept}: accuracy {t.accuracy:.2%}, drop {t.drop_points:.2f} points")
    chosen = result.chosen
    console.print(
        f"[green]kept in float[/green]: {escape(', '.join(chosen.float_blocks) or 'no block')} "
        f"({len(chosen.float_blocks)} of {len(chosen.float_blocks) + len(chosen.quantized)}); "
        f"accuracy {chosen.accuracy:.2%} against fp32 {result.fp32_accuracy:.2%} "
        f"(drop {chosen.drop_points:.2f} <= {result.max_drop_points} points)"
    )
    if result.speed is not None:
        s = result.speed
        console.print(f"speed cost (onnxruntime CPU, batch {s.batch_size}, {s.threads} threads, p50 of {s.rounds} "
                      f"interleaved rounds): fp32 {s.fp32_ms:.2f} ms, INT8 every block {s.int8_ms:.2f} ms, "
                      f"with the float blocks {s.chosen_ms:.2f} ms "
                      f"({s.cost:.2f}x all-INT8, {s.fp32_ms / s.chosen_ms:.2f}x faster than fp32)"
                      + ("; unstable: the machine was busy, re-run with resnet-deploy bench before quoting"
                         if s.unstable else ""))


def print_quantize_result(result, output: Path) -> None:
    ratio = result.size_after / result.size_before
    weights = "7-bit weights, any CPU" if result.int8_kernels == "any" else "8-bit weights, CPUs with VNNI"
    console.print(
        f"[green]wrote[/green] {escape(str(output))}: int8 QDQ ({weights}: int8_kernels {result.int8_kernels}), "
        f"{result.method} on {result.samples} samples; "
        f"{human_bytes(result.size_before)} -> {human_bytes(result.size_after)} ({ratio:.2f}x); "
        # A calibration that hurts (a wrong std, say) agrees with fp32 on its own inputs: 100% for a
        # half-scale calibration of the digits model that lost 14 points on held-out scans.
        f"on the {result.samples} inputs it was calibrated on"
        # (a features file has no classes: its embeddings' cosine similarity to fp32 is the measure)
        + ("" if result.top1_agreement is None
           else " (no test of accuracy: --eval-data DATA --max-accuracy-drop POINTS measures that)")
        + f": {result.fidelity.describe()}"
    )
    if result.heldout is not None:  # (a failure was also warned about, in one line on stderr)
        console.print(f"held out of the calibration, on this CPU: {result.heldout.describe()}", markup=False)


@handle_errors
def quantize(
    model: ModelPath,
    calibration: Annotated[Path, typer.Option(
        "--calibration", "-c", help="A folder of images, or a .npy of preprocessed float32 [N, 3, H, W] inputs.",
        show_default=False)],
    output: Annotated[Optional[Path], typer.Option(
        "--output", "-o", help="Where to write the INT8 file. \\[required] unless --sensitivity",
        show_default=False)] = None,
    method: Method = "minmax",
    per_channel: Annotated[bool, typer.Option(
        "--per-channel/--per-tensor", metavar="",
        help="Weight scales per output channel (default) or per tensor.")] = True,
    max_samples: MaxSamples = DEFAULT_MAX_SAMPLES,
    report: Report = None,
    force: Force = False,
    sensitivity: Annotated[bool, typer.Option(
        "--sensitivity", metavar="",
        help="Quantize one block at a time and report each one's cost; writes no model.")] = False,
    eval_data: EvalData = None,
    max_accuracy_drop: Annotated[Optional[float], typer.Option(
        "--max-accuracy-drop",
        help="Keep the most sensitive blocks in float until the accuracy drop on --eval-data "
             "is at most this many points.")] = None,
    target_cpu: TargetCpu = "auto",
) -> None:
    """Static INT8 quantization (QDQ) with onnxruntime's tools, calibrated on real data, \
for the CPUs of --target-cpu."""
    from resnet_deploy.diagnostics.int8 import quantize as run_quantize
    from resnet_deploy.precision.accuracy_aware import AccuracyAwareResult
    from resnet_deploy.precision.options import QuantizeOptions
    from resnet_deploy.precision.quantize import QuantizeResult

    options = QuantizeOptions(method=method, per_channel=per_channel, target_cpu=target_cpu, max_samples=max_samples,
                              eval_data=eval_data, max_accuracy_drop=max_accuracy_drop, sensitivity=sensitivity)
    check_report(report)
    result = run_quantize(model, calibration, output, options, force=force, progress=progress)
    if isinstance(result, QuantizeResult):
        for note in result.notes:
            err_console.print(f"note: {note}", markup=False, soft_wrap=True)
        print_quantize_result(result, result.path)  # type: ignore[arg-type]
    elif isinstance(result, AccuracyAwareResult):
        print_accuracy_aware(result)
        console.print(f"[green]wrote[/green] {escape(str(result.path))}")
    else:
        print_sensitivity(result)
    if report is not None:
        write_json(report, result.to_dict(), replace=force)
