"""``resnet-deploy compare``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from resnet_deploy import _json
from resnet_deploy.diagnostics.compare import DEFAULT_TOLERANCES

from ._errors import CLIError, handle_errors
from ._options import ModelPath, Threads, words
from ._output import console, err_console, escape


def print_compare_result(result) -> None:
    table = Table(title=escape(f"{result.b} against {result.a}, {result.samples} samples"), title_justify="left")
    for col in ("block", "max rel error", "cosine (worst)", "top-1 agreement"):
        table.add_column(col, justify="left" if col == "block" else "right")
    for row in result.rows:
        mark = "[red]" if row.over_tolerance else ""
        table.add_row(
            escape(row.name),
            f"{mark}{row.max_rel_error:.2e}",
            f"{row.cosine:.6f}",
            "" if row.top1_agreement is None else f"{row.top1_agreement:.1%}",
        )
    console.print(table)
    for note in result.notes:
        err_console.print(f"warning: {escape(note)}")
    tolerance = f"{result.tolerance:g}" + ("" if result.tolerance_from == "given"
                                           else f" ({result.tolerance_from} default)")
    if result.first_over:
        console.print(f"first block over tolerance {tolerance}: [bold]{escape(result.first_over)}[/bold]")
    else:
        console.print(f"every block within tolerance {tolerance}")


@handle_errors
def compare(
    model: ModelPath,
    other: Annotated[Optional[Path], typer.Argument(
        help="A second ONNX file (e.g. the INT8 one); without it, MODEL on two providers.", show_default=False)] = None,
    providers: Annotated[str, typer.Option(
        "--providers", "--provider", "-p",
        help="One provider for two files, or two (reference first) for one file, e.g. cpu,openvino.")] = "cpu",
    images: Annotated[Optional[Path], typer.Option(
        "--images", help="A folder of images, preprocessed from the model's metadata.")] = None,
    data: Annotated[Optional[Path], typer.Option(
        "--data", help="A .npy of preprocessed float32 [N, 3, H, W] inputs.")] = None,
    samples: Annotated[Optional[int], typer.Option(
        "--samples", help="Use at most this many inputs (default 8 random, 128 from data).")] = None,
    tolerance: Annotated[Optional[float], typer.Option(
        "--tolerance",
        help="Max relative error per block, max|b - a| / max|a| (default by the lossier side's precision: "
             + ", ".join(f"{k} {v:g}" for k, v in DEFAULT_TOLERANCES.items()) + ").", show_default=False)] = None,
    eager: Annotated[bool, typer.Option(
        "--eager", metavar="",
        help="Compare MODEL with the eager PyTorch model it was exported from (our exports; needs torch).")] = False,
    weights: Annotated[Optional[Path], typer.Option(
        "--weights", help="With --eager: the checkpoint MODEL was exported from (checked by its SHA-256).")] = None,
    threads: Threads = None,
    as_json: Annotated[bool, typer.Option("--json", metavar="", help="Print JSON instead of the table.")] = False,
) -> None:
    """Find where a deployment diverges: both sides block by block (stem, layer1.0 ..., head)."""
    from resnet_deploy.diagnostics.compare import compare_files

    if images is not None and data is not None:
        raise CLIError("give --images or --data, not both")
    names = tuple(words(providers) or ())
    result = compare_files(model, other, providers=names, data=images or data, samples=samples, tolerance=tolerance,
                           threads=threads, eager=eager, weights=weights)
    if as_json:
        print(_json.dumps(result.to_dict(), indent=2))  # strict JSON: a NaN block error is null
        for note in result.notes:
            err_console.print(f"warning: {escape(note)}")
        return
    print_compare_result(result)
