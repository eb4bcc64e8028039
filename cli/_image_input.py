"""The ``--image-input`` options that ``export`` and ``optimize`` share."""

from __future__ import annotations

import math
from typing import Annotated, Optional, Sequence

import typer
from rich.table import Table

from resnet_deploy.export.image_input import MAX_PIXEL_LEVELS, MIN_TOP5_OVERLAP
from resnet_deploy.export.pipeline import StageReport

from ._errors import CLIError
from ._output import console, escape

ImageInput = Annotated[bool, typer.Option(
    "--image-input", metavar="",
    help="Put the preprocessing in the graph: the file takes uint8 RGB images [N, H, W, 3] of any size "
         "(one size per batch); resize, crop and mean/std run inside it, verified on photos against PIL.")]
ImageInputTopK = Annotated[int, typer.Option(
    "--image-input-top-k", metavar="K", min=0,
    help="With --image-input, also output softmax 'scores' and the top K classes ('top_k_scores', 'top_k_indices').")]
Mean = Annotated[Optional[str], typer.Option(
    "--mean", help="With --image-input: per-channel mean R,G,B of [0, 1] pixels (default: the file's metadata).")]
Std = Annotated[Optional[str], typer.Option(
    "--std", help="With --image-input: per-channel std R,G,B (default: the file's metadata).")]


def channels(value: str | None, flag: str) -> tuple[float, ...] | None:
    """``"0.485,0.456,0.406"`` -> three finite floats, or one line naming ``flag``."""
    if value is None:
        return None
    try:
        numbers = tuple(float(v) for v in value.split(","))
    except ValueError:
        numbers = ()
    if len(numbers) != 3 or not all(math.isfinite(v) for v in numbers):
        raise CLIError(f"{flag} takes three numbers R,G,B, e.g. 0.485,0.456,0.406; received {value!r}")
    return numbers


def check_image_input_flags(image_input: bool, top_k: int, **others: object) -> None:
    """--image-input-top-k, --mean and --std mean nothing without --image-input."""
    given = [flag for flag, value in {"--image-input-top-k": top_k, **others}.items() if value]
    if given and not image_input:
        raise CLIError(f"{', '.join(given)} only apply with --image-input")


def print_image_input_checks(stages: Sequence[StageReport]) -> None:
    """Per photo, the image input's numbers against PIL preprocessing + the classifier."""
    for stage in stages:
        checks = stage.details.get("image_input")
        if not checks:
            continue
        table = Table(title=f"{stage.name}: the graph's preprocessing vs PIL's, per photo", title_justify="left")
        for column in ("photo", "size", "pixels: max", "differ", "logits: rel err", "top-1", "top-5"):
            table.add_column(column, justify="left" if column == "photo" else "right")
        for c in checks["images"]:
            table.add_row(escape(c["name"]), f"{c['width']}x{c['height']}", f"{c['max_pixel_error']:.2f} lv",
                          f"{c['pixels_differing']:.3%}", f"{c['max_rel_error']:.2e}",
                          "equal" if c["top1_equal"] else "DIFFERS",
                          f"{c['top5_overlap']}/5")
        console.print(table)
        console.print(f"bounds: logits max rel error <= {checks['rtol']:.0e}, "
                      f"pixels <= {MAX_PIXEL_LEVELS:.0f} grey levels, top-1 equal, "
                      f"top-5 overlap >= {MIN_TOP5_OVERLAP}/5; a batch of 2 vs each alone: "
                      f"{checks['batch_rel_error']:.1e}", markup=False)
