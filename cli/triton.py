"""``resnet-deploy triton``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from resnet_deploy.serving.triton import TRITON_BACKENDS, TritonOptions, options_from_profile, write_triton_repository

from ._errors import CLIError, handle_errors
from ._output import console, err_console, escape

@handle_errors
def triton(
    repository: Annotated[Path, typer.Option("--repository", "-r", help="The Triton model repository folder.")],
    model: Annotated[Optional[Path], typer.Argument(
        help="An ONNX file (or none, with --profile).", show_default=False)] = None,
    name: Annotated[Optional[str], typer.Option(
        "--name", help="Model name in the repository (default: the file's stem).")] = None,
    max_batch_size: Annotated[Optional[int], typer.Option(
        "--max-batch-size",
        help="Largest batch Triton forms; 0 disables batching (default 32; 0 for a model with a fixed batch).",
        show_default=False)] = None,
    instances: Annotated[Optional[int], typer.Option(
        "--instances",
        help="Model instances (parallel executions); default 1, or the profile's layout from tune --mode throughput.",
        show_default=False)] = None,
    provider: Annotated[Optional[str], typer.Option(
        "--provider", "-p", help="cpu (default), cuda, tensorrt or openvino; not with --profile, which names its own.",
        show_default=False)] = None,
    fp16: Annotated[bool, typer.Option(
        "--fp16", metavar="", help="TensorRT in FP16 (with --provider tensorrt).")] = False,
    queue_delay_us: Annotated[int, typer.Option(
        "--queue-delay-us", help="How long Triton waits to form a batch.")] = 100,
    force: Annotated[bool, typer.Option(
        "--force", "-f", metavar="", help="Replace an existing entry of that name (atomically).")] = False,
    profile: Annotated[Optional[Path], typer.Option(
        "--profile", help="A deployment profile from resnet-deploy tune: served as tuned.")] = None,
    backend: Annotated[str, typer.Option(
        "--backend",
        help="onnxruntime (Triton's own backend), python (Predictor inside Triton's Python backend), or auto: "
             "python where onnxruntime's cannot express the profile.")] = "auto",
    threads: Annotated[Optional[int], typer.Option(
        "--threads", help="Intra-op threads per instance (default: the profile's, else all cores).",
        show_default=False)] = None,
) -> None:
    """Lay out a Triton Inference Server model repository entry."""
    if backend not in ("auto", *TRITON_BACKENDS):
        raise CLIError(f"unknown backend {backend!r}; expected auto, {', '.join(TRITON_BACKENDS)}")
    options = TritonOptions(name=name, max_batch_size=max_batch_size, instances=1 if instances is None else instances,
                            provider=provider or "cpu", fp16=fp16, queue_delay_us=queue_delay_us, force=force,
                            backend="onnxruntime" if backend == "auto" else backend, threads=threads)
    notes: list[str] = []
    if profile is not None:
        if model is not None:
            raise CLIError("--profile names the model file; drop the MODEL argument")
        tuned = options_from_profile(profile, options, backend=backend, provider=provider, instances=instances)
        model, options, notes = tuned.model, tuned.options, tuned.notes
    elif model is None:
        raise CLIError("give an ONNX file, or --profile")
    entry = write_triton_repository(model, repository, options)
    for note in notes + entry.notes:
        err_console.print(f"note: {note}", markup=False, soft_wrap=True)
    console.print(f"[green]wrote[/green] {escape(str(entry.config_path))} and {escape(str(entry.model_path))}")
    console.print(entry.config, markup=False, highlight=False)
