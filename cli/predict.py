"""``resnet-deploy predict``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from resnet_deploy import _json
from resnet_deploy.preprocess.images import image_files
from resnet_deploy.runtime import Predictor

from ._errors import CLIError, handle_errors
from ._options import ModelPath, Threads
# labels come from the model file: escaped, no control characters reach the terminal
from ._output import console, err_console, escape


@handle_errors
def predict(
    model: ModelPath,
    images: Annotated[Optional[list[Path]], typer.Argument(
        help="Image files (JPEG, PNG, ...) or folders of them.", show_default=False)] = None,
    top_k: Annotated[int, typer.Option("--top-k", "-k", help="How many classes to show per image.", min=1)] = 5,
    provider: Annotated[Optional[str], typer.Option(
        "--provider", "-p", help="Execution provider: auto (default), cpu, cuda, tensorrt or openvino.")] = None,
    threads: Threads = None,
    batch_size: Annotated[int, typer.Option(
        "--batch-size", "-b",
        help="Images decoded and run at a time (memory grows with it, not with the number of images).")] = 16,
    profile: Annotated[Optional[Path], typer.Option(
        "--profile",
        help="A deployment profile from resnet-deploy tune: its model, provider and options "
             "(every argument is then an image).")] = None,
    as_json: Annotated[bool, typer.Option(
        "--json", metavar="", help="Print JSON: [{image, provider, top_k: [{index, label, score}]}].")] = False,
) -> None:
    """Classify images with an exported model (or with the configuration a tune profile chose)."""
    images = list(images or [])
    if profile is not None:
        if provider is not None or threads is not None:
            raise CLIError("--profile sets the provider and threads; drop --provider/--threads")
        images = image_files([model, *images])
        predictor = Predictor.from_profile(profile)
    else:
        if not images:
            raise CLIError("give at least one image after the model")
        images = image_files(images)
        predictor = Predictor(model, provider=provider, threads=threads)
    with predictor:
        results = predictor.predict(images, top_k=top_k, batch_size=batch_size)
        used = predictor.provider
    if as_json:
        payload = [
            {"image": str(img), "provider": used,
             "top_k": [{"index": p.index, "label": p.label, "score": p.score} for p in preds]}
            for img, preds in zip(images, results)
        ]
        print(_json.dumps(payload, indent=2))
        return
    err_console.print(f"[dim]provider: {used}[/dim]")
    for img, preds in zip(images, results):
        table = Table(title=escape(str(img)), title_justify="left")
        table.add_column("rank", justify="right")
        table.add_column("index", justify="right")
        table.add_column("label")
        table.add_column("score", justify="right")
        for rank, p in enumerate(preds, 1):
            table.add_row(str(rank), str(p.index), escape(p.label), f"{p.score:.4f}")
        console.print(table)
