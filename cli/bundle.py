"""``resnet-deploy bundle``."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated, Optional

import typer

from ._errors import CLIError, handle_errors
from ._options import Force, ModelPath
from ._output import console, err_console, escape, human_bytes, progress


@handle_errors
def bundle(
    model: ModelPath,
    output: Annotated[Path, typer.Option(
        "--output", "-o", help="The folder to write (served as it is by any static web server).", show_default=False)],
    web: Annotated[bool, typer.Option(
        "--web", metavar="",
        help="A static web page that classifies a chosen or dropped image with onnxruntime-web. \\[required]")] = False,
    int8: Annotated[bool, typer.Option(
        "--int8", metavar="",
        help="Quantize the classifier to INT8 QDQ (the preprocessing stays float); needs --calibration.")] = False,
    calibration: Annotated[Optional[Path], typer.Option(
        "--calibration", "-c", help="Images (a folder) or a .npy to calibrate --int8 on.", show_default=False)] = None,
    ort_format: Annotated[bool, typer.Option(
        "--ort-format", metavar="",
        help="Ship onnxruntime's ORT format with the graph optimizations applied offline.")] = False,
    threads: Annotated[int, typer.Option(
        "--threads",
        help="WebAssembly threads the page uses; 0: every core when the page is cross-origin isolated, else 1.")] = 0,
    node_modules: Annotated[Optional[Path], typer.Option(
        "--node-modules",
        help="A node_modules holding onnxruntime-web "
             "(default: the user's cache, installed there with npm when missing).", show_default=False)] = None,
    page: Annotated[Optional[Path], typer.Option(
        "--page", help="The page's own files (default: the package's).", show_default=False)] = None,
    force: Force = False,
) -> None:
    """Write a folder that runs an --image-input model somewhere else: for now a web page (--web)."""
    from resnet_deploy.serving.bundle import WebBundleOptions, write_web_bundle

    if not web:
        raise CLIError("say what to bundle for: --web (a static page with onnxruntime-web) is the one target so far")
    written = write_web_bundle(model, output, WebBundleOptions(int8=int8, calibration=calibration,
                                                               ort_format=ort_format, threads=threads,
                                                               node_modules=node_modules, page=page, force=force),
                               progress=progress)
    for note in written.notes:
        err_console.print(f"note: {note}", markup=False, soft_wrap=True)
    config = written.config
    console.print(f"[green]wrote[/green] {escape(str(written.folder))} ({human_bytes(written.size)}): "
                  f"{escape(written.model.name)} ({config['precision']}, {config['format'].upper()} format), "
                  f"onnxruntime-web {escape(config['onnxruntime_web'])}; "
                  f"serve it with `python3 {escape(shlex.quote(str(written.folder / 'serve.py')))}` "
                  "(threads need its COOP/COEP headers)",
                  soft_wrap=True)  # one line, so that the command pastes as it is
