"""``resnet-deploy batch``."""

from __future__ import annotations

import contextlib
from enum import Enum
from pathlib import Path
from typing import Annotated, Callable, Iterator, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn, TimeRemainingColumn
from rich.text import Text

from resnet_deploy.serving.batch import ENGINES, BatchOptions, BatchProgress, BatchResult

from ._choices import choice, metavar
from ._errors import CLIError, fail, handle_errors
from ._output import console, err_console, escape

# The library's engines, one catalogue: an engine added there is a value of --engine here.
Engine = Enum("Engine", {name.upper(): name for name in ENGINES}, type=str)  # type: ignore[misc]


class _Rate(ProgressColumn):
    def render(self, task: Task) -> Text:
        return Text(f"{task.speed:.1f} images/s" if task.speed else "", style="progress.data.speed")


@contextlib.contextmanager
def _progress_bar() -> Iterator[Optional[Callable[[BatchProgress], None]]]:
    """A bar with images/s and the time left, on a terminal only (a log gets the summary line)."""
    if not err_console.is_terminal:
        yield None
        return
    columns = (TextColumn("batch"), BarColumn(), MofNCompleteColumn(), _Rate(),
               TextColumn("{task.fields[failed]} failed"),
               TimeRemainingColumn())
    with Progress(*columns, console=err_console, transient=True) as bar:
        task = bar.add_task("batch", total=None, failed=0)
        started = False

        def update(p: BatchProgress) -> None:
            nonlocal started
            if not started:  # images finished by an earlier run are not this run's speed
                bar.reset(task, total=p.total, completed=p.done, failed=p.failed)
                started = True
            else:
                bar.update(task, completed=p.done, failed=p.failed)

        yield update


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _summary(result: BatchResult) -> str:
    """One line, always: what this run did, where, and how fast."""
    if not result.shards_written:
        return (f"nothing to do: the job in {result.output} was finished by an earlier run "
                f"({_n(result.shards, 'shard')})")
    before = f" ({result.shards_skipped} finished by an earlier run)" if result.shards_skipped else ""
    return (f"{_n(result.processed, 'image')}, {result.failed} failed, {result.images_per_s:.1f} images/s "
            f"({result.startup_s:.1f} s start-up, {result.seconds:.1f} s wall); "
            f"{result.shards_written} of {_n(result.shards, 'shard')} written to {result.output}"
            f"{before}; {result.engine}, {_n(result.workers, 'decode worker')} + "
            f"{_n(result.threads, 'inference thread')}")


@handle_errors
def batch(
    model: Annotated[str, typer.Argument(
        metavar="MODEL", show_default=False, help="An ONNX file (with --profile: the first INPUT).")],
    output: Annotated[Path, typer.Option(
        "--output", "-o", help="The folder of Parquet shards (new, empty, or this job's to resume).",
        show_default=False)],
    inputs: Annotated[Optional[list[str]], typer.Argument(metavar="INPUT", show_default=False, help=(
        "The images: files, folders (searched recursively), glob patterns (quoted: 'photos/**/*.jpg'), "
        "or @list.txt (one path per line, relative to the list's folder)."))] = None,
    profile: Annotated[Optional[list[Path]], typer.Option(
        "--profile",
        help="A deployment profile from resnet-deploy tune: its model, provider and options "
             "(every argument is then an input). With --engine ray, repeat it for the cluster's "
             "other machines.")] = None,
    top_k: Annotated[int, typer.Option("--top-k", "-k", help="Classes kept per image (a classifier).")] = 5,
    shard_size: Annotated[int, typer.Option("--shard-size", help="Images per Parquet file.")] = 1024,
    batch_size: Annotated[int, typer.Option(
        "--batch-size", "-b", help="Images decoded and run together (at most 4,096).")] = 16,
    workers: Annotated[Optional[int], typer.Option(
        "--workers", help="Decode processes (default: half the cores; at most 256).")] = None,
    threads: Annotated[Optional[int], typer.Option(
        "--threads", help="Inference threads (default: every core; the decode workers run beside them).")] = None,
    provider: Annotated[Optional[str], typer.Option(
        "--provider", "-p", help="Execution provider: auto (default), cpu, cuda, tensorrt or openvino.")] = None,
    engine: Annotated[str, typer.Option(
        "--engine", parser=choice(Engine, "engine"), metavar=metavar(Engine),
        help="Where the work runs: local (this machine: decode workers feeding one session) or ray "
             "(Ray Data: decode tasks feeding a pool of Predictor actors; the ray extra).")] = "local",
    ray_address: Annotated[Optional[str], typer.Option(
        "--ray-address", help="With --engine ray: the cluster to join (default: RAY_ADDRESS, else a local Ray).",
        show_default=False)] = None,
    force: Annotated[bool, typer.Option(
        "--force", "-f", metavar="",
        help="Start over in a folder holding another job (only a folder of ours is ever cleared).")] = False,
) -> None:
    """Classify or embed many images into Parquet shards; killed, the same command resumes the job."""
    inputs = list(inputs or [])
    profiles = list(profile or [])
    if profiles:
        inputs.insert(0, model)
    elif not inputs:
        raise CLIError("give the model, then at least one input (a file, a folder, a glob or @list.txt)")
    options = BatchOptions(tuple(inputs), output, model=None if profiles else Path(model),
                           profile=profiles[0] if profiles else None, top_k=top_k, shard_size=shard_size,
                           batch_size=batch_size, workers=workers, threads=threads, provider=provider, engine=engine,
                           force=force, profiles=tuple(profiles[1:]), ray_address=ray_address)
    from resnet_deploy.serving.batch import run_batch  # pyarrow and the engine: only for this command

    try:
        with _progress_bar() as update:
            result = run_batch(options, progress=update)
    except KeyboardInterrupt:
        raise fail(f"interrupted; the finished shards in {output} are kept: "
                   "the same command resumes the job", 130) from None
    console.print(escape(_summary(result)), soft_wrap=True)
