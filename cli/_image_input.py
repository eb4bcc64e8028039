"""The ``--image-input`` options that ``export`` and ``optimize`` share."""

from __future__ import annotations

import math
from typing import Annotated, Optional

import typer

from ._errors import CLIError

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
