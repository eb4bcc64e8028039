"""What a quantization is asked for, checked as a whole before any work.

One frozen object for every path of ``quantize``: plain INT8, accuracy-aware INT8
(``max_accuracy_drop`` with ``eval_data``) and the sensitivity table (``sensitivity``). Every
option reaches every path it applies to, and one that a path would ignore is refused by name
(``per_channel`` applies to all three: the scales a file would have are the scales measured).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from .._errors import InputError
from .calibration import DEFAULT_MAX_SAMPLES
from .recipes import CALIBRATION_METHODS, DEFAULT_RECIPE, QuantRecipe, target_kernels

__all__ = ["QuantizeOptions", "check_options"]


@dataclass(frozen=True)
class QuantizeOptions:
    method: str = "minmax"  # the calibration method, one of CALIBRATION_METHODS
    per_channel: bool = True  # weight scales per output channel, or one per tensor
    target_cpu: str = "auto"  # the CPU class the file is made for (recipes.TARGET_CPUS); plain INT8 only
    max_samples: int | None = DEFAULT_MAX_SAMPLES  # calibration samples used at most
    eval_data: Path | None = None  # labelled data: accuracy-aware INT8's budget, or the sensitivity's cost
    max_accuracy_drop: float | None = None  # percentage points: accuracy-aware INT8
    sensitivity: bool = False  # each block's cost, reported; no model written
    measure_speed: bool = True  # accuracy-aware: time what the float blocks cost with the benchmark

    @property
    def mode(self) -> str:
        """``"sensitivity"``, ``"accuracy-aware"`` or ``"plain"``."""
        if self.sensitivity:
            return "sensitivity"
        return "plain" if self.max_accuracy_drop is None else "accuracy-aware"

    @property
    def recipe(self) -> QuantRecipe:
        return replace(DEFAULT_RECIPE, per_channel=self.per_channel)


def check_options(options: QuantizeOptions, output: str | Path | None) -> None:
    """Refuse a combination a path would silently ignore, or that none can run."""
    if options.method not in CALIBRATION_METHODS:
        raise InputError(f"unknown calibration method {options.method!r}; "
                         f"expected one of {', '.join(CALIBRATION_METHODS)}")
    target_kernels(options.target_cpu)  # an unknown CPU class is refused by name
    if options.target_cpu != "auto" and options.mode != "plain":
        raise InputError("--target-cpu applies to plain quantize; --sensitivity and --max-accuracy-drop "
                         "measure INT8 for this machine (auto)")
    if options.sensitivity:
        if output is not None:  # (as export refuses --calibration without --int8: no flag is silently ignored)
            raise InputError("--sensitivity writes no model; drop --output (the table, and --report, are its output)")
        if options.max_accuracy_drop is not None:
            raise InputError("--max-accuracy-drop chooses a model to write and --sensitivity writes none; "
                             "use one of them")
        return
    if output is None:
        raise InputError("--output is required to write a model (only --sensitivity writes none)")
    if options.max_accuracy_drop is None:
        if options.eval_data is not None:
            raise InputError("--eval-data is used by --max-accuracy-drop or --sensitivity; "
                             "plain quantize does not measure accuracy")
        return
    if options.eval_data is None:
        raise InputError("--max-accuracy-drop needs --eval-data: labelled data to measure the drop on")
    if not options.max_accuracy_drop >= 0:
        raise InputError(f"the maximum accuracy drop must be >= 0 points, received {options.max_accuracy_drop}")
