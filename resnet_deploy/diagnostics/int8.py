"""``quantize`` as one call: the options checked as a whole, the path they ask for, one way of saving.

- plain INT8: :func:`~resnet_deploy.precision.quantize.quantize_file` (the file checked on held-out
  calibration samples, its image input put back);
- accuracy-aware INT8: :func:`~resnet_deploy.precision.accuracy_aware.quantize_accuracy_aware`,
  then the benchmark times what its float blocks cost (:mod:`.speed_cost`);
- the sensitivity table: :func:`.sensitivity.block_sensitivity`, which writes no model.

It sits on the diagnostics floor because two of its paths reach above ``precision``: the speed
cost is the benchmark's measurement, the sensitivity table a diagnosis. Both model-writing paths
check the output before any work and save atomically with ``save_onnx`` (``force=False``: never
over an existing file, even one created while this ran); each result carries the path it wrote.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Union

from .._atomic import check_writable
from .._errors import InputError
from ..graph.io import save_onnx
from ..precision.accuracy_aware import AccuracyAwareResult, quantize_accuracy_aware
from ..precision.options import QuantizeOptions, check_options
from ..precision.quantize import QuantizeResult, quantize_file
from .sensitivity import SensitivityResult, block_sensitivity

__all__ = ["QuantizeOptions", "QuantizeOutcome", "quantize"]

QuantizeOutcome = Union[QuantizeResult, AccuracyAwareResult, SensitivityResult]


def quantize(
    model_path: str | Path,
    calibration: str | Path | None,
    output: str | Path | None,
    options: QuantizeOptions = QuantizeOptions(),
    *,
    force: bool = False,
    progress: Callable[[str], None] | None = None,
) -> QuantizeOutcome:
    """Quantize ``model_path`` as ``options`` ask (:attr:`QuantizeOptions.mode`) and save to
    ``output`` (None only for the sensitivity table). ``calibration`` None calibrates plain INT8 on
    synthetic inputs (timing only); the block-wise paths need real data."""
    check_options(options, output)
    if options.mode != "plain" and calibration is None:
        raise InputError(f"{options.mode} INT8 needs calibration data: "
                         "the block-wise trials are calibrated on real inputs")
    if options.sensitivity:
        return block_sensitivity(model_path, calibration, eval_data=options.eval_data,  # type: ignore[arg-type]
                                 method=options.method, per_channel=options.per_channel,
                                 max_samples=options.max_samples, progress=progress)
    if options.mode == "plain":
        return quantize_file(model_path, output, calibration, method=options.method,  # type: ignore[arg-type]
                             per_channel=options.per_channel, target_cpu=options.target_cpu,
                             max_samples=options.max_samples, progress=progress, force=force)
    return _accuracy_aware(Path(model_path), calibration, check_writable(output),  # type: ignore[arg-type]
                           options, force, progress)


def _accuracy_aware(model_path: Path, calibration: str | Path, output: Path, options: QuantizeOptions, force: bool,
                    progress: Callable[[str], None] | None) -> AccuracyAwareResult:
    from .speed_cost import speed_cost

    say = progress or (lambda _msg: None)
    result = quantize_accuracy_aware(
        model_path, calibration, options.eval_data, max_drop_points=options.max_accuracy_drop,  # type: ignore[arg-type]
        method=options.method, recipe=options.recipe, max_samples=options.max_samples, progress=progress)
    if options.measure_speed and result.chosen.float_blocks:
        say("timing fp32, all-INT8 and the chosen model side by side")
        result.speed = speed_cost(model_path, result.all_int8, result.model, None)  # type: ignore[arg-type]
        if result.speed is None:
            say("the speed cost was not measured: a benchmark engine failed (see resnet-deploy bench on the files)")
    save_onnx(result.model, output, replace=force)  # type: ignore[arg-type]
    result.path = output
    return result
