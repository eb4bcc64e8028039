"""``resnet-deploy export``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from resnet_deploy._extras import require
from resnet_deploy.precision.calibration import DEFAULT_MAX_SAMPLES
from resnet_deploy.graph.io import DEFAULT_OPSET

from ._errors import CLIError, handle_errors
from ._image_input import ImageInput, ImageInputTopK, check_image_input_flags, print_image_input_checks
from ._options import Depth, Force, ModelName, Output, Plain, Report, TargetCpu, zoo_model_name
from .quantize import Calibration, MaxSamples, Method, print_quantize_result
from ._output import check_report, console, print_pipeline_result, progress, write_json


@handle_errors
def export(
    depth: Depth = None,
    plain: Plain = False,
    model: ModelName = None,
    output: Output = None,
    weights: Annotated[Optional[Path], typer.Option(
        "--weights", "-w", help="A .pth/.pt (loaded with weights_only=True) or .safetensors checkpoint.")] = None,
    num_classes: Annotated[Optional[int], typer.Option(
        "--num-classes", help="Classifier width (default: 1000 ImageNet, 10 CIFAR).")] = None,
    image_size: Annotated[Optional[int], typer.Option(
        "--image-size", help="Input height and width (default: 224 ImageNet, 32 CIFAR).")] = None,
    opset: Annotated[int, typer.Option("--opset", help="ONNX opset (18 or newer).")] = DEFAULT_OPSET,
    static_batch: Annotated[Optional[int], typer.Option(
        "--static-batch", help="Fix the batch size instead of a dynamic batch axis.")] = None,
    labels: Annotated[Optional[Path], typer.Option(
        "--labels", help="Class names, one per line, stored in the model's metadata.")] = None,
    report: Report = None,
    force: Force = False,
    int8: Annotated[bool, typer.Option(
        "--int8", metavar="",
        help="Also write an INT8 (QDQ) model beside the output, calibrated on --calibration.")] = False,
    calibration: Calibration = None,
    method: Method = "minmax",
    max_samples: MaxSamples = DEFAULT_MAX_SAMPLES,
    image_input: ImageInput = False,
    image_input_top_k: ImageInputTopK = 0,
    features: Annotated[bool, typer.Option(
        "--features", metavar="",
        help="Embeddings instead of classes: the pooled features (output `embedding`), "
             "verified against the net with fc = Identity.")] = False,
    normalize: Annotated[bool, typer.Option(
        "--normalize", metavar="", help="With --features: L2-normalise each embedding to unit length.")] = False,
    target_cpu: TargetCpu = "auto",
) -> None:
    """Export a ResNet to a verified ONNX file (export, check, simplify, fuse, verify, save)."""
    require("export", "torch", "onnxscript", "onnxsim")
    from resnet_deploy import get_model_spec
    from resnet_deploy._atomic import check_distinct, check_new
    from resnet_deploy.export.exporter import ExportOptions, int8_path, read_labels_file
    from resnet_deploy.precision.export_int8 import Int8Options, export_with_int8

    name = zoo_model_name(model, depth, plain)
    spec = get_model_spec(name)  # an unknown name fails here, before any note about its weights
    output = output or Path(f"{name}.onnx")
    if int8 and calibration is None:
        raise CLIError("--int8 needs --calibration: a folder of images or a .npy file")
    if calibration is not None and not int8:
        raise CLIError("--calibration is only used with --int8")
    if target_cpu != "auto" and not int8:
        raise CLIError("--target-cpu is only used with --int8")
    check_report(report)
    check_image_input_flags(image_input, image_input_top_k)
    # handle_errors checked the paths the user gave; the default name and the INT8 file are derived here.
    outputs = {"--output": output, "the INT8 model": int8_path(output) if int8 else None, "--report": report}
    check_distinct(outputs, {"--weights": weights, "--labels": labels, "--calibration": calibration})
    check_new(outputs, force=force)
    if labels is not None and features:
        raise CLIError("a features file has no classes to name: drop --labels")
    names = read_labels_file(labels, num_classes or spec.num_classes) if labels else None
    options = ExportOptions(
        name=name,
        num_classes=num_classes,
        weights=weights,
        image_size=image_size,
        opset=opset,
        static_batch=static_batch,
        labels=names,
        image_input=image_input,
        image_input_top_k=image_input_top_k,
        features=features,
        normalize=normalize,
    )
    # export, then quantize the saved file: composed in the library, which checks the INT8 file and
    # the calibration data before the slow stages and takes the fp32 file back if INT8 fails
    int8_options = Int8Options(calibration, method, max_samples, target_cpu) if int8 else None  # type: ignore[arg-type]
    if weights is None:
        console.print(f"[yellow]note:[/yellow] no --weights given: {name} is randomly initialised (He init)")
    result = export_with_int8(options, output, int8_options, progress=progress, force=force)
    parity = (f"parity vs eager PyTorch: max rel error {result.max_rel_error:.2e}, "
              f"top-1 agreement {result.top1_agreement:.0%}")
    print_pipeline_result(f"{name}: op counts per stage", result.stages, result.path, result.size_bytes, result.seconds,
                          result.fusions, parity)
    print_image_input_checks(result.stages)
    if result.int8 is not None:
        print_quantize_result(result.int8, result.int8.path)
    if report is not None:
        write_json(report, result.to_dict(), replace=force)
        console.print(f"report: {report}", markup=False)

