"""``resnet-deploy tune``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.table import Table

if TYPE_CHECKING:
    from resnet_deploy.tune.serving import ServingChoice

from ._choices import Mode, choice, metavar
from ._errors import CLIError, handle_errors
from ._options import Force, ModelPath, TargetCpu, Threads, words
from ._output import console, err_console, escape, progress


@handle_errors
def tune(
    model: ModelPath,
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the deployment profile (JSON).")],
    providers: Annotated[Optional[str], typer.Option(
        "--providers", "--provider", "-p",
        help="Comma-separated: cpu, openvino, cuda, tensorrt (default: all available).")] = None,
    precision: Annotated[Optional[str], typer.Option(
        "--precision", help="Comma-separated: fp32, bf16, fp16, int8 (default: all).")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", help="The batch size to deploy.")] = 1,
    threads: Threads = None,
    calibration: Annotated[Optional[Path], typer.Option(
        "--calibration", "-c",
        help="INT8 calibration data (images folder or .npy); without it INT8 is measured but not chosen.")] = None,
    eval_data: Annotated[Optional[Path], typer.Option(
        "--eval-data",
        help="Labelled data (.npz with x and y, or class-index subfolders): accuracy of every candidate.")] = None,
    max_accuracy_drop: Annotated[float, typer.Option(
        "--max-accuracy-drop", help="Accuracy points a candidate may lose against fp32 (with --eval-data).")] = 1.0,
    duration: Annotated[float, typer.Option("--duration", help="Seconds of timed runs per candidate.")] = 3.0,
    rounds: Annotated[int, typer.Option("--rounds", help="Interleaved rounds of the candidates.")] = 3,
    force: Force = False,
    mode: Annotated[str, typer.Option(
        "--mode", parser=choice(Mode, "mode"), metavar=metavar(Mode),
        help="latency (the fastest single request) or throughput "
             "(instances x threads per instance for a service: the most images/s).")] = "latency",
    max_p99_ms: Annotated[Optional[float], typer.Option(
        "--max-p99-ms", help="Throughput mode: the client-side p99 (ms) a layout may not exceed.",
        show_default=False)] = None,
    target_cpu: TargetCpu = "auto",
) -> None:
    """Measure every way this machine can run MODEL, verify each against fp32, and write a profile of the fastest."""
    from resnet_deploy.tune import TuneOptions, VerdictKind, tune as run_tune

    if batch_size < 1:
        raise CLIError(f"--batch-size must be at least 1, received {batch_size}")
    options = TuneOptions(model=model, output=output, providers=words(providers), precisions=words(precision),
                          batch_size=batch_size, threads=threads, calibration=calibration, eval_data=eval_data,
                          max_accuracy_drop=max_accuracy_drop, duration=duration, rounds=rounds, force=force,
                          mode=mode, max_p99_ms=max_p99_ms, target_cpu=target_cpu)
    result = run_tune(options, progress=progress)
    console.print(_table(result))
    w = result.winner.record
    console.print(f"[green]wrote[/green] {escape(str(result.profile_path))}: {w.engine} ({w.provider}, {w.precision}), "
                  f"p50 {w.p50_ms:.2f} ms"
                  + (f", {w.speedup_vs_baseline:.2f}x the reference" if w.speedup_vs_baseline else ""))
    if result.winner.kind is VerdictKind.NOISY:  # the profile records it; the screen must say it too
        err_console.print(f"warning: the winner's timing was unstable ({w.unstable_reason or 'noisy'}), "
                          "so the choice may be noise: run tune again on a quieter machine, "
                          "or with more --duration or --rounds", markup=False, soft_wrap=True)
    for v in result.verdicts:
        if not v.verified and v.kind is not VerdictKind.SYNTHETIC:
            err_console.print(f"[dim]{escape(v.record.engine)}: {escape(v.reason)}[/dim]")
    if result.synthetic_calibration:
        err_console.print("note: INT8 was calibrated on synthetic inputs, so it was measured but not chosen; "
                          "pass --calibration")
    if result.heldout is not None:
        h = result.heldout
        err_console.print(f"note: without labels, INT8 was judged by its logits on {h.samples} calibration samples "
                          f"held out of the calibration (max rel error {h.max_rel_error:.1e}, 'h' in the table, "
                          f"top-1 agreement {h.top1_agreement:.1%}); they share its preprocessing, so only labelled "
                          "data decides what INT8 costs in accuracy: pass --eval-data", markup=False)
    if result.serving is not None:
        _print_serving(result.serving)
    console.print(result.usage(), markup=False)


def _table(result) -> Table:  # type: ignore[no-untyped-def]
    from resnet_deploy.tune import VerdictKind

    table = Table(title="tune: candidates, fastest verified first", title_justify="left")
    for col in ("candidate", "p50 ms", "speed", "rel err", "acc", "verdict"):
        table.add_column(col, justify="left" if col in ("candidate", "verdict") else "right", no_wrap=True)
    order = sorted(result.verdicts, key=lambda v: (not v.verified, v.record.p50_ms or float("inf")))
    for v in order:
        r = v.record
        mark = v.kind.value  # the full reason is in the profile
        if v is result.winner:
            mark = ("[bold green]winner[/bold green]"
                    + (", [yellow]noisy[/yellow]" if v.kind is VerdictKind.NOISY else ""))
        # INT8 without labels was judged on held-out calibration samples: show that error ("h"),
        # not the one on the fixed standard-normal input, which did not decide.
        heldout = result.heldout if r.precision == "int8" and r.accuracy is None else None
        error = (f"{heldout.max_rel_error:.1e}h" if heldout
                 else f"{r.max_rel_error:.1e}" if r.max_rel_error is not None else "")
        table.add_row(
            r.engine,
            f"{r.p50_ms:.2f}" if r.p50_ms else "",
            f"{r.speedup_vs_baseline:.2f}x" if r.speedup_vs_baseline else "",
            error,
            f"{r.accuracy:.2%}" if r.accuracy is not None else "",
            mark,
        )
    return table


def _print_serving(choice: "ServingChoice") -> None:
    """The layouts measured in throughput mode, the chosen one marked."""
    bound = f" (p99 bound {choice.max_p99_ms:g} ms)" if choice.max_p99_ms is not None else ""
    console.print(f"serving layouts, instances x threads per instance{bound}:", markup=False)
    for row in sorted(choice.layouts, key=lambda r: -(r.images_per_s or 0.0)):
        mark = ("winner" if row == choice.best
                else "over the p99 bound" if not row.within_bound and row.error is None else (row.error or ""))
        figures = (f"{row.images_per_s:8.1f} img/s, p50 {row.p50_ms:7.2f} ms, p99 {row.p99_ms:7.2f} ms"
                   if row.images_per_s is not None and row.p50_ms is not None and row.p99_ms is not None
                   else "not measured")
        console.print(f"  {row.engine:16s} {row.instances:2d} x {row.threads:<2d} {figures}  {mark}", markup=False,
                      soft_wrap=True)
    console.print(f"triton --profile writes instance_group count {choice.best.instances} with {choice.best.threads} "
                  "threads per instance", markup=False)
