"""``resnet-deploy triton``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.markup import escape

from resnet_deploy.serving.triton import TRITON_BACKENDS, TritonOptions, profile_backend, write_triton_repository

from ._errors import CLIError, handle_errors
from ._output import console, err_console

if TYPE_CHECKING:
    from resnet_deploy.profile.deployment import DeploymentProfile


@handle_errors
def triton(
    repository: Annotated[Path, typer.Option("--repository", "-r", help="The Triton model repository folder.")],
    model: Annotated[Optional[Path], typer.Argument(help="An ONNX file (or none, with --profile).", show_default=False)] = None,
    name: Annotated[Optional[str], typer.Option("--name", help="Model name in the repository (default: the file's stem).")] = None,
    max_batch_size: Annotated[Optional[int], typer.Option("--max-batch-size", help="Largest batch Triton forms; 0 disables batching (default 32; 0 for a model with a fixed batch).", show_default=False)] = None,
    instances: Annotated[Optional[int], typer.Option("--instances", help="Model instances (parallel executions); default 1, or the profile's layout from tune --mode throughput.", show_default=False)] = None,
    provider: Annotated[Optional[str], typer.Option("--provider", "-p", help="cpu (default), cuda, tensorrt or openvino; not with --profile, which names its own.", show_default=False)] = None,
    fp16: Annotated[bool, typer.Option("--fp16", metavar="", help="TensorRT in FP16 (with --provider tensorrt).")] = False,
    queue_delay_us: Annotated[int, typer.Option("--queue-delay-us", help="How long Triton waits to form a batch.")] = 100,
    force: Annotated[bool, typer.Option("--force", "-f", metavar="", help="Replace an existing entry of that name (atomically).")] = False,
    profile: Annotated[Optional[Path], typer.Option("--profile", help="A deployment profile from resnet-deploy tune: served as tuned.")] = None,
    backend: Annotated[str, typer.Option("--backend", help="onnxruntime (Triton's own backend), python (Predictor inside Triton's Python backend), or auto: python where onnxruntime's cannot express the profile.")] = "auto",
    threads: Annotated[Optional[int], typer.Option("--threads", help="Intra-op threads per instance (default: the profile's, else all cores).", show_default=False)] = None,
) -> None:
    """Lay out a Triton Inference Server model repository entry."""
    if backend not in ("auto", *TRITON_BACKENDS):
        raise CLIError(f"unknown backend {backend!r}; expected auto, {', '.join(TRITON_BACKENDS)}")
    notes: list[str] = []
    if profile is not None:
        if provider is not None:
            raise CLIError("--profile names its provider (the one tune measured); drop --provider")
        tuned, model, name = profile_target(profile, model, name)
        provider = tuned.provider
        fp16 = fp16 or bool(tuned.session.get("fp16"))
        threads = threads if threads is not None else tuned.session.get("threads")
        if instances is None and tuned.serving:  # tune --mode throughput measured this layout
            instances = tuned.serving["instances"]
            notes.append(f"{instances} instance{'s' if instances != 1 else ''} x {threads} thread{'s' if threads != 1 else ''} each, as tune --mode throughput measured "
                         f"({tuned.serving.get('images_per_s') or 0:.0f} images/s, p99 {tuned.serving.get('p99_ms') or 0:.2f} ms)")
        needed, why = profile_backend(tuned)
        if backend == "auto":
            backend = needed
            notes += [why] if why else []
        elif backend == "onnxruntime" and why:
            notes.append(f"--backend onnxruntime: the entry does NOT serve the profile as tuned; {why.split(':')[0]}")
        if backend == "python":
            fp16 = False  # the profile's own fp16 setting travels inside it
    elif model is None:
        raise CLIError("give an ONNX file, or --profile")
    backend = "onnxruntime" if backend == "auto" else backend
    entry = write_triton_repository(model, repository, TritonOptions(
        name=name, max_batch_size=max_batch_size, instances=1 if instances is None else instances, provider=provider or "cpu", fp16=fp16,
        queue_delay_us=queue_delay_us, force=force, backend=backend, threads=threads,
        profile=profile))
    for note in notes + entry.notes:
        err_console.print(f"note: {note}", markup=False, soft_wrap=True)
    console.print(f"[green]wrote[/green] {escape(str(entry.config_path))} and {escape(str(entry.model_path))}")
    console.print(entry.config, markup=False, highlight=False)


def profile_target(profile: Path, model: Optional[Path], name: Optional[str]) -> tuple["DeploymentProfile", Path, str]:
    """What an entry for ``--profile`` serves (``triton``, ``serve``): the profile, its model
    file and the entry's name (default: the model the profile was tuned from)."""
    from resnet_deploy.profile.deployment import load_profile

    if model is not None:
        raise CLIError("--profile names the model file; drop the MODEL argument")
    tuned = load_profile(profile, check_model=False)  # write_triton_repository hashes the bytes it writes, once
    path = tuned.model_path(profile)
    return tuned, path, name or Path(tuned.source_model or path).stem
