"""``resnet-deploy bench``."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Annotated, Any, Optional, get_args

import typer
from rich import box
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from resnet_deploy.bench import BenchOptions, run_benchmark
from resnet_deploy.bench.outputs import Reports, check_measured, check_served
from resnet_deploy.bench.report import NoteKind, fit_columns, footnotes, sorted_rows
from resnet_deploy.bench.schema import BenchResult

from ._choices import Mode, choice, metavar
from ._errors import CLIError, handle_errors
from ._options import Force, ModelName, Plain, Threads, numbers, words, zoo_model_name
from ._output import console, err_console, escape, progress
from ._terminal import printable

# bench's options, grouped in --help by what they decide.
WHAT, HOW, DATA, REPORTS, CACHE = "What to measure", "How to measure", "Data", "Reports", "Cache"


def _in(alias: Any, panel: str) -> Any:
    """A shared option alias of :mod:`._options`, shown in ``panel`` of bench's help."""
    kind, info = get_args(alias)
    info = copy.copy(info)
    info.rich_help_panel = panel
    return Annotated[kind, info]


Depth = Annotated[Optional[int], typer.Option(
    "--depth", "-d", help="ResNet depth of the zoo (default 50 when no file is given).", show_default=False)]


@handle_errors
def bench(
    models: Annotated[Optional[list[Path]], typer.Argument(
        help="ONNX files to measure as they are (the first is the baseline unless eager PyTorch can rebuild it).",
        show_default=False)] = None,
    depth: _in(Depth, WHAT) = None,
    plain: _in(Plain, WHAT) = False,
    model: _in(ModelName, WHAT) = None,
    weights: Annotated[Optional[Path], typer.Option(
        "--weights", "-w",
        help="Checkpoint to benchmark, or the one the ONNX file was exported from (random init otherwise).",
        rich_help_panel=WHAT)] = None,
    providers: Annotated[Optional[str], typer.Option(
        "--providers", "--provider", "-p",
        help="Comma-separated: cpu, cuda, tensorrt, openvino (default: all available; cpu for files).",
        rich_help_panel=WHAT)] = None,
    precision: Annotated[Optional[str], typer.Option(
        "--precision", help="Comma-separated: fp32, bf16, fp16, int8 (default: all).", rich_help_panel=WHAT)] = None,
    engines: Annotated[Optional[str], typer.Option(
        "--engines", help="Comma-separated engine names to keep (the eager baseline always runs).",
        rich_help_panel=WHAT)] = None,
    compile: Annotated[bool, typer.Option(
        "--compile", metavar="", help="Also measure torch.compile (slow to start).", rich_help_panel=WHAT)] = False,
    url: Annotated[Optional[str], typer.Option(
        "--url",
        help="Comma-separated Triton servers of the first file's model (grpc://HOST:PORT, http://HOST:PORT): "
             "served beside in-process figures; --model names it there (default: the file's stem).", show_default=False,
        rich_help_panel=WHAT)] = None,
    profile: Annotated[Optional[Path], typer.Option(
        "--profile",
        help="A deployment profile from resnet-deploy tune, instead of files: its model file in its configuration, "
             "what serve --profile serves (the baseline for --url).", show_default=False, rich_help_panel=WHAT)] = None,
    request_timeout: Annotated[Optional[float], typer.Option(
        "--request-timeout",
        help="With --url: seconds one request may take, HTTP and gRPC (default 30); "
             "the first that takes longer fails that server's remaining groups at once.", show_default=False,
        rich_help_panel=HOW)] = None,
    batch_size: Annotated[str, typer.Option(
        "--batch-size", "-b", help="Comma-separated batch sizes, e.g. 1,8,32.", rich_help_panel=HOW)] = "1",
    threads: _in(Threads, HOW) = None,
    duration: Annotated[float, typer.Option(
        "--duration", help="Seconds of timed runs per engine and batch size, split over the rounds.",
        rich_help_panel=HOW)] = 3.0,
    iterations: Annotated[Optional[int], typer.Option(
        "--iterations", help="A fixed number of timed runs instead of --duration.", rich_help_panel=HOW)] = None,
    warmup: Annotated[int, typer.Option("--warmup", help="Untimed runs first.", rich_help_panel=HOW)] = 5,
    rounds: Annotated[Optional[int], typer.Option(
        "--rounds", help="Interleaved rounds (A B C A B C ...); default 5.", show_default=False,
        rich_help_panel=HOW)] = None,
    mode: Annotated[str, typer.Option(
        "--mode", parser=choice(Mode, "mode"), metavar=metavar(Mode),
        help="latency (one synchronous request at a time) or throughput (concurrent requests).",
        rich_help_panel=HOW)] = "latency",
    concurrency: Annotated[Optional[str], typer.Option(
        "--concurrency", help="Throughput mode: comma-separated requests in flight, e.g. 1,2,4 (the default).",
        rich_help_panel=HOW)] = None,
    peak: Annotated[bool, typer.Option(
        "--peak", metavar="", help="Measure the machine's fp32 GEMM peak and report each engine's fraction.",
        rich_help_panel=HOW)] = False,
    calibration: Annotated[Optional[Path], typer.Option(
        "--calibration", help="INT8 calibration data (images folder or .npy); synthetic otherwise, labelled so.",
        rich_help_panel=DATA)] = None,
    eval_data: Annotated[Optional[Path], typer.Option(
        "--eval-data", help="Labelled data: an .npz with x and y, or a folder of class-index subfolders.",
        rich_help_panel=DATA)] = None,
    json_out: Annotated[Optional[Path], typer.Option(
        "--json", help="Write records and environment as JSON.", rich_help_panel=REPORTS)] = None,
    csv_out: Annotated[Optional[Path], typer.Option(
        "--csv", help="Write the records as CSV.", rich_help_panel=REPORTS)] = None,
    markdown_out: Annotated[Optional[Path], typer.Option(
        "--markdown", help="Write a markdown table.", rich_help_panel=REPORTS)] = None,
    plot_out: Annotated[Optional[Path], typer.Option(
        "--plot", help="Write a PNG of latency and throughput.", rich_help_panel=REPORTS)] = None,
    force: _in(Force, REPORTS) = False,
    cache_dir: Annotated[Optional[Path], typer.Option(
        "--cache-dir", help="Where exported models are cached.", rich_help_panel=CACHE)] = None,
    clear_cache: Annotated[bool, typer.Option(
        "--clear-cache", metavar="", help="Remove the cached exports (of --cache-dir) and exit.",
        rich_help_panel=CACHE)] = False,
) -> None:
    """Benchmark engines side by side, each in its own process: eager PyTorch against every
    ONNX Runtime path of a model of the zoo, or ONNX files as they are."""
    if clear_cache:
        from resnet_deploy.bench.cache import clear_cache as clear

        folder = BenchOptions(cache_dir=cache_dir).cache_folder()
        removed, freed = clear(folder)
        console.print(f"removed {removed} cached {'entry' if removed == 1 else 'entries'} ({freed / 1e6:.1f} MB) "
                      f"from {escape(str(folder))}")
        return
    reports = Reports(json=json_out, csv=csv_out, markdown=markdown_out, plot=plot_out)
    reports.check()
    served_model = None
    if url is not None:  # --model is the served model's name, beside the file it serves
        if not models and profile is None:
            raise CLIError("--url measures a served model beside the ONNX file it serves: "
                           "give that file (or its --profile) too")
        served_model, model = model, None
    if (models or profile is not None) and (depth is not None or model is not None or plain):
        raise CLIError("give ONNX files (or --profile) or --depth/--model, not both")
    name = "" if models or profile is not None else zoo_model_name(model, depth, plain)
    options = BenchOptions(
        model=name,
        files=list(models or ()),
        weights=weights,
        batch_sizes=numbers(batch_size, "--batch-size"),
        providers=words(providers),
        precisions=words(precision),
        engines=words(engines),
        threads=threads,
        duration=None if iterations is not None else duration,
        iterations=iterations,
        warmup=warmup,
        rounds=rounds,
        mode=mode,
        concurrency=numbers(concurrency, "--concurrency") if concurrency is not None else None,
        compile=compile,
        peak=peak,
        calibration=calibration,
        eval_data=eval_data,
        cache_dir=cache_dir,
        urls=words(url) or (),
        served_model=served_model,
        request_timeout=request_timeout,
        profile=profile,
    )
    if not err_console.is_terminal:  # no bar in logs and redirected output
        result = run_benchmark(options, progress=progress)
    else:
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                      TimeElapsedColumn(), console=err_console, transient=True) as bar:
            task = bar.add_task("preparing", total=None)

            def on_step(label: str, step: int, total: int) -> None:
                bar.update(task, description=label, completed=step - 1, total=total)

            result = run_benchmark(options, progress=progress, on_step=on_step)
    _print(result)
    check_measured(result)
    # The zoo's exports are cached between runs: say how much that holds (INT8 and TensorRT entries add up).
    if not models and profile is None:
        from resnet_deploy.bench.cache import cache_usage

        folder = options.cache_folder()
        entries, size = cache_usage(folder)
        err_console.print(f"note: the bench cache {folder} holds {entries} {'entry' if entries == 1 else 'entries'}, "
                          f"{size / 1e6:.1f} MB; resnet-deploy bench --clear-cache removes them", markup=False,
                          highlight=False, soft_wrap=True)
    reports.write(result, replace=force)
    check_served(result)


_NOTE_STYLES = {NoteKind.INFO: "dim", NoteKind.UNSTABLE: "yellow", NoteKind.FAILED: "red"}


def _print(result: BenchResult) -> None:
    """The table (fitted to the terminal width: full detail is in --json/--csv/--markdown),
    its footnotes and one line about the machine."""
    mode = result.options.get("mode", "latency")
    what = result.options.get("model") or ", ".join(Path(f).name for f in result.options.get("files", []))
    console.print(f"{escape(what)}: {mode}, medians of {result.records[0].rounds or 0 if result.records else 0} "
                  f"interleaved rounds, speed against {result.baseline}")
    console.print(_table(result, console.width))
    for note in footnotes(result):
        console.print(Text(printable(note.line), style=_NOTE_STYLES[note.kind]))
    env = result.environment
    isa = ", ".join(k for k, v in env["isa"].items() if v) or "none"
    load = f", load {env['loadavg_start'][0]:.1f} -> {env['loadavg_end'][0]:.1f}" if env.get("loadavg_end") else ""
    console.print(Text(f"{env['cpu']}, {env['cores']} cores, {env['threads']} threads, ISA {isa}"
                       + (f", GPU {env['gpu']}" if env.get("gpu") else "")
                       + (f", fp32 GEMM peak {env['peak_gflops']:.0f} GFLOP/s" if env.get("peak_gflops") else "")
                       + load))


def _table(result: BenchResult, width: int) -> Table:
    columns = fit_columns(result.records, width)
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1))
    for c in columns:
        table.add_column(c.short, justify="right" if c.numeric else "left", no_wrap=True, overflow="fold")
    for r in sorted_rows(result.records):
        cells = [c.render(r) for c in columns]
        speed = r.speedup_vs_baseline
        if r.unstable:
            style = "yellow"  # never celebrated: the footnote says why
        elif speed is not None and speed >= 1.8:
            style = "bold green"
        elif speed is not None and speed < 1.0:
            style = "red"
        else:
            style = ""
        table.add_row(*[Text(printable(cell),
                             style=style if c.key == "speedup_vs_baseline" or (r.unstable and c.key == "engine")
                             else "")
                        for c, cell in zip(columns, cells)])
    return table
