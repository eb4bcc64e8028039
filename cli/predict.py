"""``resnet-deploy predict``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from resnet_deploy.runtime import Predictor

from ._errors import handle_errors
from ._options import ModelPath, Provider, Threads
from ._output import console, err_console


@handle_errors
def predict(
    model: ModelPath,
    images: Annotated[list[Path], typer.Argument(help="Image files (JPEG, PNG, ...).", show_default=False)],
    top_k: Annotated[int, typer.Option("--top-k", "-k", help="How many classes to show per image.", min=1)] = 5,
    provider: Provider = "auto",
    threads: Threads = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON: [{image, top_k: [{index, label, score}]}].")] = False,
) -> None:
    """Classify images with an exported model."""
    with Predictor(model, provider=provider, threads=threads) as predictor:
        results = predictor.predict(list(images), top_k=top_k)
        used = predictor.provider
    if as_json:
        payload = [
            {"image": str(img), "top_k": [{"index": p.index, "label": p.label, "score": p.score} for p in preds]}
            for img, preds in zip(images, results)
        ]
        print(json.dumps(payload, indent=2))
        return
    err_console.print(f"[dim]provider: {used}[/dim]")
    for img, preds in zip(images, results):
        table = Table(title=str(img), title_justify="left")
        table.add_column("rank", justify="right")
        table.add_column("index", justify="right")
        table.add_column("label")
        table.add_column("score", justify="right")
        for rank, p in enumerate(preds, 1):
            table.add_row(str(rank), str(p.index), p.label, f"{p.score:.4f}")
        console.print(table)
