"""``resnet-deploy bench``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from resnet_deploy import model_name_for_depth
from resnet_deploy._atomic import atomic_write_bytes
from resnet_deploy.bench import BenchOptions, check_outputs, plot, run_benchmark, to_csv, to_markdown

from ._errors import CLIError, handle_errors
from ._options import Depth, ModelName, Plain, Threads
from ._output import console, err_console, progress, write_json


def _int_list(text: str, what: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise CLIError(f"{what} must be comma-separated integers, received {text!r}") from None


def _str_list(text: str | None) -> list[str] | None:
    return [v.strip().lower() for v in text.split(",") if v.strip()] if text else None


@handle_errors
def bench(
    depth: Depth = 50,
    plain: Plain = False,
    model: ModelName = None,
    weights: Annotated[Optional[Path], typer.Option("--weights", "-w", help="Checkpoint to benchmark (random init otherwise).")] = None,
    batch_size: Annotated[str, typer.Option("--batch-size", "-b", help="Comma-separated batch sizes, e.g. 1,8,32.")] = "1",
    providers: Annotated[Optional[str], typer.Option("--providers", help="Comma-separated: cpu, cuda, tensorrt, openvino (default: all available).")] = None,
    precision: Annotated[Optional[str], typer.Option("--precision", help="Comma-separated: fp32, bf16, fp16, int8 (default: all).")] = None,
    engines: Annotated[Optional[str], typer.Option("--engines", help="Comma-separated engine names to keep (the eager baseline always runs).")] = None,
    threads: Threads = None,
    duration: Annotated[float, typer.Option("--duration", help="Seconds of timed runs per engine and batch size.")] = 3.0,
    iterations: Annotated[Optional[int], typer.Option("--iterations", help="A fixed number of timed runs instead of --duration.")] = None,
    warmup: Annotated[int, typer.Option("--warmup", help="Untimed runs first.", min=0)] = 5,
    compile: Annotated[bool, typer.Option("--compile", help="Also measure torch.compile (slow to start).")] = False,
    peak: Annotated[bool, typer.Option("--peak", help="Measure the machine's fp32 GEMM peak and report each engine's fraction.")] = False,
    calibration: Annotated[Optional[Path], typer.Option("--calibration", help="INT8 calibration data (images folder or .npy); synthetic otherwise, labelled so.")] = None,
    eval_data: Annotated[Optional[Path], typer.Option("--eval-data", help="Labelled data: an .npz with x and y, or a folder of class-index subfolders.")] = None,
    cache_dir: Annotated[Optional[Path], typer.Option("--cache-dir", help="Where exported models are cached.")] = None,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Write records and environment as JSON.")] = None,
    csv_out: Annotated[Optional[Path], typer.Option("--csv", help="Write the records as CSV.")] = None,
    markdown_out: Annotated[Optional[Path], typer.Option("--markdown", help="Write a markdown table.")] = None,
    plot_out: Annotated[Optional[Path], typer.Option("--plot", help="Write a PNG of latency and throughput against batch size.")] = None,
) -> None:
    """Benchmark eager PyTorch against every ONNX Runtime path, side by side, each engine in its own process."""
    check_outputs(json_out, csv_out, markdown_out, plot_out)
    options = BenchOptions(
        model=model or model_name_for_depth(depth, plain=plain),
        weights=weights,
        batch_sizes=_int_list(batch_size, "--batch-size"),
        providers=_str_list(providers),
        precisions=_str_list(precision),
        engines=_str_list(engines),
        threads=threads,
        duration=None if iterations else duration,
        iterations=iterations,
        warmup=warmup,
        compile=compile,
        peak=peak,
        calibration=calibration,
        eval_data=eval_data,
        cache_dir=cache_dir,
    )
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(), console=err_console, transient=True) as bar:
        task = bar.add_task("preparing", total=None)

        def on_step(name: str, step: int, total: int) -> None:
            bar.update(task, description=name, completed=step - 1, total=total)

        result = run_benchmark(options, progress=progress, on_step=on_step)
    console.print(_table(result))
    env = result.environment
    isa = ", ".join(k for k, v in env["isa"].items() if v) or "none"
    console.print(f"{env['cpu']}, {env['cores']} cores, {env['threads']} threads, ISA {isa}" + (f", GPU {env['gpu']}" if env.get("gpu") else "")
                  + (f", fp32 GEMM peak {env['peak_gflops']:.0f} GFLOP/s" if env.get("peak_gflops") else ""))
    if any(r.get("synthetic_calibration") for r in result.records):
        console.print("[yellow]note:[/yellow] INT8 records were calibrated on synthetic inputs: fit for timing only (pass --calibration for real accuracy)")
    if json_out:
        write_json(json_out, result.to_dict())
    if csv_out:
        atomic_write_bytes(csv_out, to_csv(result.records).encode())
    if markdown_out:
        atomic_write_bytes(markdown_out, to_markdown(result).encode())
    if plot_out:
        plot(result, plot_out)
    failed = [r for r in result.records if r.get("error")]
    for r in failed:
        console.print(f"[red]{r['engine']} batch {r['batch_size']} failed:[/red] {r['error']}")


def _table(result) -> Table:
    has_acc = any(r.get("accuracy") is not None for r in result.records)
    has_peak = any(r.get("peak_fraction") is not None for r in result.records)
    table = Table(title=f"{result.options['model']}: medians of isolated runs", title_justify="left")
    for col in ("engine", "prec", "batch", "p50 ms", "p90 ms", "p99 ms", "img/s", "vs eager", "GFLOP/s", "rel err"):
        table.add_column(col, justify="left" if col in ("engine", "prec") else "right")
    if has_peak:
        table.add_column("of peak", justify="right")
    if has_acc:
        table.add_column("accuracy", justify="right")
    rows = sorted((r for r in result.records if not r.get("error")), key=lambda r: (r["batch_size"], r["p50_ms"]))
    for r in rows:
        speed = r.get("speedup_vs_eager")
        style = "bold green" if speed and speed >= 1.8 else ("red" if speed and speed < 1.0 else "")
        cells = [
            r["engine"] + ("*" if r.get("synthetic_calibration") else ""),
            r["precision"],
            str(r["batch_size"]),
            f"{r['p50_ms']:.2f}",
            f"{r['p90_ms']:.2f}",
            f"{r['p99_ms']:.2f}",
            f"{r['images_per_s']:.1f}",
            f"[{style}]{speed:.2f}x[/{style}]" if speed and style else (f"{speed:.2f}x" if speed else ""),
            f"{r['gflops']:.0f}",
            f"{r['max_rel_error']:.1e}" if r.get("max_rel_error") is not None else "",
        ]
        if has_peak:
            cells.append(f"{r['peak_fraction']:.0%}" if r.get("peak_fraction") else "")
        if has_acc:
            cells.append(f"{r['accuracy']:.2%}" if r.get("accuracy") is not None else "")
        table.add_row(*cells)
    return table
