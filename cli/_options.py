"""Option aliases shared by several commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ._choices import TargetCpu as _TargetCpu, choice, metavar

ModelPath = Annotated[Path, typer.Argument(help="An ONNX file.", show_default=False)]
# None, so that --depth given together with --model can be told from the default (50).
Depth = Annotated[Optional[int], typer.Option(
    "--depth", "-d", help="ResNet depth: 18/34/50/101/152 (ImageNet) or 20/32/44/56/110/1202 (CIFAR); default 50.",
    show_default=False)]
Plain = Annotated[bool, typer.Option(
    "--plain", metavar="", help="The plain twin without shortcuts (the paper's degradation baseline).")]
ModelName = Annotated[Optional[str], typer.Option(
    "--model", "-m", help="A registered model name instead of --depth, e.g. resnet20.")]
Provider = Annotated[str, typer.Option(
    "--provider", "-p", help="Execution provider: auto, cpu, cuda, tensorrt or openvino.")]
Threads = Annotated[Optional[int], typer.Option(
    "--threads", help="Intra-op threads (default: the cores this process may use).")]
Output = Annotated[Optional[Path], typer.Option("--output", "-o", help="Where to write the ONNX file.")]
Report = Annotated[Optional[Path], typer.Option("--report", help="Also write a JSON report of every stage.")]
TargetCpu = Annotated[str, typer.Option(
    "--target-cpu", parser=choice(_TargetCpu, "target CPU"), metavar=metavar(_TargetCpu),
    help="The CPUs the INT8 file is for: vnni (AVX512-VNNI, AVX-VNNI or AMX: 8-bit weights), any "
         "(AVX2 too: 7-bit weights, reduce_range), or auto (this machine's class). "
         "Recorded in its metadata as int8_kernels.")]


def words(text: str | None) -> list[str] | None:
    """A comma-separated option (``--providers cpu,CUDA``) as lower-case words; None when not given."""
    return [v.strip().lower() for v in text.split(",") if v.strip()] if text else None


def numbers(text: str, option: str) -> list[int]:
    """A comma-separated option of integers (``--batch-size 1,8,32``)."""
    from ._errors import CLIError

    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise CLIError(f"{option} must be comma-separated integers, received {text!r}") from None


def zoo_model_name(model: str | None, depth: int | None, plain: bool) -> str:
    """The registered name that ``--model`` or ``--depth [--plain]`` (default 50) asks for; both at once is an error."""
    from resnet_deploy import model_name_for_depth  # the zoo (and torch) only when asked for

    from ._errors import CLIError

    if model is not None and (plain or depth is not None):
        raise CLIError(f"give --model or --depth/--plain, not both (--model {model} names the model)")
    return model or model_name_for_depth(50 if depth is None else depth, plain=plain)


Force = Annotated[bool, typer.Option(
    "--force", "-f", metavar="", help="Replace outputs that already exist (atomically: a failure keeps the old file).")]
