"""``resnet-deploy optimize``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._choices import FilePrecision, Target, choice, metavar
from ._errors import CLIError, handle_errors
from ._image_input import (ImageInput, ImageInputTopK, Mean, Std, channels, check_image_input_flags,
                           print_image_input_checks)
from ._options import Force, ModelPath, Report
from ._output import check_report, print_pipeline_result, progress, write_json


@handle_errors
def optimize(
    model: ModelPath,
    output: Annotated[Path, typer.Option(
        "--output", "-o", help="Where to write the optimized file (never the input itself).", show_default=False)],
    target: Annotated[str, typer.Option(
        "--target", "-t", parser=choice(Target, "target"), metavar=metavar(Target),
        help="portable (standard ONNX), cpu or cuda (adds onnxruntime's FusedConv).")] = "portable",
    precision: Annotated[str, typer.Option(
        "--precision", parser=choice(FilePrecision, "precision"), metavar=metavar(FilePrecision),
        help="fp32, or fp16 for GPU providers (inputs and outputs stay fp32).")] = "fp32",
    report: Report = None,
    force: Force = False,
    image_input: ImageInput = False,
    image_input_top_k: ImageInputTopK = 0,
    mean: Mean = None,
    std: Std = None,
    features: Annotated[bool, typer.Option(
        "--features", metavar="",
        help="Embeddings instead of classes: cut the final Gemm/MatMul classifier off (output `embedding`), "
             "verified against the source's classifier input.")] = False,
    normalize: Annotated[bool, typer.Option(
        "--normalize", metavar="", help="With --features: L2-normalise each embedding to unit length.")] = False,
) -> None:
    """Simplify, fuse and verify an ONNX ResNet exported elsewhere."""
    from resnet_deploy.image_input import ImageInputRequest
    from resnet_deploy.export.features_stage import FeaturesRequest
    from resnet_deploy.export.optimize import optimize_file

    if normalize and not features:
        raise CLIError("--normalize applies to embeddings: add --features")
    check_report(report)
    check_image_input_flags(image_input, image_input_top_k, **{"--mean": mean, "--std": std})
    request = (ImageInputRequest(channels(mean, "--mean"), channels(std, "--std"), image_input_top_k)
               if image_input else None)
    result = optimize_file(model, output, target, precision=precision, progress=progress, force=force,
                           image_input=request, features=FeaturesRequest(normalize) if features else None)
    title = f"{model.name} -> {output.name} ({target}): op counts per stage"
    against = "the original's classifier input" if features else "original"
    parity = f"parity vs {against}: max rel error {result.max_rel_error:.2e}"
    print_pipeline_result(title, result.stages, output, result.size_bytes, result.seconds, result.fusions, parity)
    print_image_input_checks(result.stages)
    if report is not None:
        write_json(report, result.to_dict(), replace=force)
