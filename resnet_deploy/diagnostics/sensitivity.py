"""Which blocks INT8 hurts: each block (stem, ``layer1.0`` ..., head) quantized alone, every
other block left in float, and its cost measured: the accuracy drop on labelled evaluation data,
or without labels the outputs' max relative error against fp32 on the calibration inputs.

The trials are accuracy-aware INT8's ranking (:mod:`resnet_deploy.precision.accuracy_aware`, which
produces models); this module reports them as ``quantize --sensitivity``'s table and writes none.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable

from ..precision.accuracy_aware import Trial, TrialRunner, each_block_alone, prepare
from ..precision.calibration import DEFAULT_MAX_SAMPLES
from ..precision.quantize import quantize_model
from ..precision.recipes import DEFAULT_RECIPE

__all__ = ["SensitivityResult", "block_sensitivity"]


@dataclass
class SensitivityResult:
    fp32_accuracy: float | None
    full_int8: Trial
    rows: list[Trial]  # one per block, quantized alone; most costly first
    metric: str  # "accuracy drop" or "logits max rel error"
    weights: str = "per-channel"  # the weight scales of every trial: "per-channel" or "per-tensor"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def block_sensitivity(
    model_path: str | Path,
    calibration: str | Path,
    *,
    eval_data: str | Path | None = None,
    method: str = "minmax",
    per_channel: bool = True,
    max_samples: int | None = DEFAULT_MAX_SAMPLES,
    threads: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> SensitivityResult:
    """Quantize one block at a time (the others float) and measure each one's cost, with the
    weight scales ``per_channel`` asks for (what a quantized file would have)."""
    say = progress or (lambda _msg: None)
    data = prepare(model_path, calibration, eval_data, max_samples, say)
    runner = TrialRunner(data.model, data.x, data.y, threads)
    recipe = replace(DEFAULT_RECIPE, per_channel=per_channel)
    full = quantize_model(data.model, data.samples, method=method, recipe=recipe, source=str(model_path)).model
    full_trial = runner.trial(full, data.names, [])
    rows = each_block_alone(runner, data.model, data.samples, data.names, method=method, recipe=recipe,
                            source=str(model_path), say=say)
    metric = "accuracy drop" if data.y is not None else "logits max rel error"
    return SensitivityResult(runner.fp32_accuracy, full_trial, rows, metric,
                             "per-channel" if per_channel else "per-tensor")
