"""The files tune's candidates run: the fp32 file as given, INT8 and fp16 made from it by the
builder bench uses (:mod:`resnet_deploy.bench.model_files`); and without evaluation data, INT8
measured on calibration samples held out of its calibration."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable

from .._errors import InputError, OnnxModelError
from ..bench.model_files import calibration_samples, fp16_model, int8_model, with_static_batch
from ..image_input import classifier_and_spec
from ..export.image_input import image_input_stage
from ..graph.io import image_input, load_onnx, save_onnx, write_metadata
from ..graph.passes.unfuse_fused_conv import is_standard
from ..graph.fp16 import is_quantized
from ..precision.holdout import HOLDOUT_EVERY, MIN_HOLDOUT_SOURCE, HeldOut, check_held_out, split_held_out

if TYPE_CHECKING:
    from . import TuneOptions

__all__ = ["make_files", "TUNE_MARKER", "HOLDOUT_EVERY", "MIN_HOLDOUT_SOURCE"]

# Without --eval-data, INT8 is judged on calibration samples held out of its calibration
# (resnet_deploy.precision.holdout: the check quantize makes of every file it writes).
# Metadata of the model files tune makes (INT8, fp16): the profile they were made for. A file
# beside a profile that does not exist, marked for it, is the orphan of a run killed between
# the two writes; the next run replaces (or removes) it without --force.
TUNE_MARKER = "tune_profile"


def make_files(options: TuneOptions, folder: Path, precisions: set[str], providers: list[str],
               say: Callable[[str], None]) -> tuple[dict[str, Path], bool, HeldOut | None]:
    """The artifacts (``portable``, ``int8``, ``int8_static``, ``fp16``) the candidates run, whether
    INT8 was calibrated on synthetic inputs, and how INT8 did on held-out samples (or None)."""
    # An image-input file: INT8 and fp16 are made from the float classifier inside, and the float
    # preprocessing put back in front (verified on photos), as quantize and optimize do.
    model, spec = classifier_and_spec(load_onnx(options.model), None, source=str(options.model))
    if not all(is_standard(n) for n in model.graph.node):
        raise OnnxModelError(f"{options.model} holds onnxruntime-specific ops; tune starts from a portable file "
                             "(resnet-deploy export, or optimize --target portable)")
    if is_quantized(model):
        raise OnnxModelError(f"{options.model} is already quantized; "
                             "tune starts from the fp32 file and makes INT8 itself")
    image = image_input(model, options.model)
    if image.shape[0] is not None and image.shape[0] != options.batch_size:
        raise InputError(f"{Path(options.model).name} has a static batch of {image.shape[0]}; "
                         f"use --batch-size {image.shape[0]}")
    files = {"portable": Path(options.model)}
    synthetic = options.calibration is None
    heldout = None
    marker = {TUNE_MARKER: Path(options.output).name}
    if "int8" in precisions and (set(providers) & {"cpu", "openvino"}):
        samples = calibration_samples(model, options.calibration, image.batch_shape(1)[1:])
        held = samples[:0]
        if not synthetic and options.eval_data is None:
            samples, held = split_held_out(samples)
        say(f"quantizing to INT8 on {len(samples)} {'synthetic' if synthetic else 'calibration'} samples"
            + (f" ({len(held)} more held out to judge it)" if len(held) else ""))
        int8 = int8_model(model, samples, source=str(options.model), target_cpu=options.target_cpu)
        if len(held):
            heldout = check_held_out(int8, model, held, options.threads)
        if spec is not None:
            int8 = image_input_stage(int8, spec, source=f"{options.model} (INT8)")[0]
        write_metadata(int8, marker)
        files["int8"] = folder / "int8.onnx"
        save_onnx(int8, files["int8"])
        files["int8_static"] = folder / "int8_static.onnx"
        save_onnx(with_static_batch(int8, options.batch_size), files["int8_static"])
    if "fp16" in precisions and (set(providers) & {"cuda"}):
        fp16 = fp16_model(model)
        if spec is not None:
            fp16 = image_input_stage(fp16, spec, source=f"{options.model} (fp16)")[0]
        write_metadata(fp16, marker)
        files["fp16"] = folder / "fp16.onnx"
        save_onnx(fp16, files["fp16"])
    return files, synthetic, heldout
