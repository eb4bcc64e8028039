"""Which blocks INT8 hurts, and INT8 that keeps the accuracy it is asked to keep.

Sensitivity: each block (stem, ``layer1.0`` ..., head) is quantized alone, every other block
left in float, and its cost measured: the accuracy drop on labelled evaluation data, or
without labels the logits' max relative error against fp32 on the calibration inputs.

Accuracy-aware INT8 (NNCF's accuracy-controlled quantization): quantize every block; while the
accuracy drop on the evaluation data exceeds the bound, keep the next most sensitive block in
float (onnxruntime's ``nodes_to_exclude``): the shortest such prefix, every trial reported.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import onnx

from .._errors import InputError, VerificationError
from ..graph.blocks import find_blocks
from ..precision.calibration import DEFAULT_MAX_SAMPLES, load_samples
from ..graph.io import image_input, read_metadata
from ..precision.quantize import DEFAULT_RECIPE, load_quantizable, quantize_model
from ..graph.verify import compare

__all__ = ["Trial", "SensitivityResult", "AccuracyAwareResult", "SpeedCost", "block_sensitivity", "quantize_accuracy_aware",
           "load_eval_data", "cpu_logits"]

_CHUNK = 256


@dataclass
class Trial:
    """One quantized variant: which blocks are quantized (or kept float) and what it measured."""

    quantized: list[str]
    float_blocks: list[str]
    accuracy: float | None  # on the evaluation data, when given
    drop_points: float | None  # fp32 accuracy minus this one, in percentage points
    top1_agreement: float  # with fp32, on the evaluation (or calibration) inputs
    max_rel_error: float


@dataclass
class SensitivityResult:
    fp32_accuracy: float | None
    full_int8: Trial
    rows: list[Trial]  # one per block, quantized alone; most costly first
    metric: str  # "accuracy drop" or "logits max rel error"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SpeedCost:
    """What the blocks kept in float cost: p50 latencies from the benchmark, one run."""

    fp32_ms: float
    int8_ms: float  # every block quantized
    chosen_ms: float  # the accuracy-aware model
    batch_size: int
    threads: int
    rounds: int
    unstable: bool  # the benchmark's flag on any of the three: the machine was busy, re-run

    @property
    def cost(self) -> float:
        """The accuracy-aware model's latency over all-INT8's (1.10: 10% slower)."""
        return self.chosen_ms / self.int8_ms


@dataclass
class AccuracyAwareResult:
    path: Path | None
    fp32_accuracy: float
    max_drop_points: float
    ranking: list[str]
    trials: list[Trial] = field(default_factory=list)
    speed: SpeedCost | None = None  # with measure_speed, when a block was kept in float

    @property
    def chosen(self) -> Trial:
        return self.trials[-1]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["path"] = str(self.path) if self.path else None
        out["float_blocks"] = self.chosen.float_blocks
        return out


def load_eval_data(source: str | Path, model: onnx.ModelProto, label: str) -> tuple[np.ndarray, np.ndarray]:
    """Labelled data: an ``.npz`` with ``x`` and ``y``, or a folder of class-index subfolders."""
    from ..precision.calibration import eval_arrays, output_classes

    image = image_input(model, label)
    with tempfile.TemporaryDirectory(prefix="resnet-deploy-eval-") as tmp:
        paths = eval_arrays(source, tuple(image.shape[1:]), read_metadata(model), Path(tmp),  # type: ignore[arg-type]
                            classes=output_classes(model))
        return np.load(paths["eval_x_path"]), np.load(paths["eval_y_path"])


def cpu_logits(model: onnx.ModelProto, x: np.ndarray, threads: int | None = None) -> np.ndarray:
    """Logits as deployed: onnxruntime's CPU provider with its full optimizations (QLinearConv
    kernels); a static batch runs in batches of its size, a dynamic one ``_CHUNK`` rows at a time."""
    from ..runtime.execution import batched_outputs

    return batched_outputs(model, x, threads=threads, piece=_CHUNK)


class _Evaluator:
    def __init__(self, fp32: onnx.ModelProto, x: np.ndarray, y: np.ndarray | None, threads: int | None) -> None:
        self.x, self.y, self.threads = x, y, threads
        self.reference = cpu_logits(fp32, x, threads)
        self.fp32_accuracy = float(np.mean(self.reference.argmax(1) == y)) if y is not None else None

    def trial(self, model: onnx.ModelProto, quantized: list[str], float_blocks: list[str]) -> Trial:
        logits = cpu_logits(model, self.x, self.threads)
        parity = compare(logits, self.reference, rtol=1.0)
        acc = float(np.mean(logits.argmax(1) == self.y)) if self.y is not None else None
        drop = 100 * (self.fp32_accuracy - acc) if acc is not None and self.fp32_accuracy is not None else None
        return Trial(quantized, float_blocks, acc, drop, parity.top1_agreement, parity.max_rel_error)


def _cost(t: Trial) -> tuple[float, float]:
    # Accuracy first; the logits' error breaks ties (most single blocks cost no accuracy at all).
    return (t.drop_points or 0.0, t.max_rel_error)


def _prepare(model_path: str | Path, calibration: str | Path, max_samples: int | None,
             say: Callable[[str], None]) -> tuple[onnx.ModelProto, np.ndarray, list[str]]:
    model, notes = load_quantizable(model_path)
    for note in notes:
        say(note)
    samples = load_samples(calibration, image_input(model, model_path).shape, read_metadata(model), max_samples=max_samples)
    return model, samples, [b.name for b in find_blocks(model, str(model_path))]


def block_sensitivity(
    model_path: str | Path,
    calibration: str | Path,
    *,
    eval_data: str | Path | None = None,
    method: str = "minmax",
    max_samples: int | None = DEFAULT_MAX_SAMPLES,
    threads: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> SensitivityResult:
    """Quantize one block at a time (the others float) and measure each one's cost."""
    say = progress or (lambda _msg: None)
    model, samples, names = _prepare(model_path, calibration, max_samples, say)
    x, y = load_eval_data(eval_data, model, str(model_path)) if eval_data is not None else (samples, None)
    evaluator = _Evaluator(model, x, y, threads)
    full = quantize_model(model, samples, method=method, recipe=DEFAULT_RECIPE, source=str(model_path)).model
    full_trial = evaluator.trial(full, names, [])
    rows = []
    for name in names:
        say(f"quantizing {name} alone")
        others = [n for n in names if n != name]
        quantized = quantize_model(model, samples, method=method, source=str(model_path), keep_float=others).model
        rows.append(evaluator.trial(quantized, [name], others))
    rows.sort(key=_cost, reverse=True)
    metric = "accuracy drop" if y is not None else "logits max rel error"
    return SensitivityResult(evaluator.fp32_accuracy, full_trial, rows, metric)


def quantize_accuracy_aware(
    model_path: str | Path,
    calibration: str | Path,
    eval_data: str | Path,
    *,
    max_drop_points: float,
    method: str = "minmax",
    max_samples: int | None = DEFAULT_MAX_SAMPLES,
    threads: int | None = None,
    measure_speed: bool = False,
    progress: Callable[[str], None] | None = None,
) -> tuple[onnx.ModelProto, AccuracyAwareResult]:
    """INT8 with the fewest most-sensitive blocks kept in float so that the accuracy drop on
    ``eval_data`` is at most ``max_drop_points`` percentage points. With ``measure_speed``, the
    benchmark times fp32, all-INT8 and the chosen model side by side (what the float blocks cost)."""
    say = progress or (lambda _msg: None)
    if not max_drop_points >= 0:
        raise InputError(f"the maximum accuracy drop must be >= 0 points, received {max_drop_points}")
    model, samples, names = _prepare(model_path, calibration, max_samples, say)
    x, y = load_eval_data(eval_data, model, str(model_path))
    evaluator = _Evaluator(model, x, y, threads)
    fp32_accuracy = float(evaluator.fp32_accuracy or 0.0)  # labels given: never None here
    say(f"fp32 accuracy {fp32_accuracy:.2%} on {len(y)} samples; quantizing every block")
    full = quantize_model(model, samples, method=method, source=str(model_path)).model
    result = AccuracyAwareResult(None, fp32_accuracy, max_drop_points, [])
    result.trials.append(evaluator.trial(full, names, []))
    if (result.trials[0].drop_points or 0.0) <= max_drop_points:
        return full, result
    say(f"full INT8 drops {result.trials[0].drop_points:.2f} points; measuring each block's sensitivity")
    sensitivity = []
    for name in names:
        others = [n for n in names if n != name]
        one = quantize_model(model, samples, method=method, source=str(model_path), keep_float=others).model
        sensitivity.append((evaluator.trial(one, [name], others), name))
    sensitivity.sort(key=lambda pair: _cost(pair[0]), reverse=True)
    result.ranking = [name for _, name in sensitivity]
    for k in range(1, len(names)):
        keep = result.ranking[:k]
        say(f"keeping {', '.join(keep)} in float")
        candidate = quantize_model(model, samples, method=method, source=str(model_path), keep_float=keep).model
        result.trials.append(evaluator.trial(candidate, [n for n in names if n not in keep], keep))
        if (result.chosen.drop_points or 0.0) <= max_drop_points:
            if measure_speed:
                say("timing fp32, all-INT8 and the chosen model side by side")
                result.speed = _speed_cost(Path(model_path), full, candidate, threads)
                if result.speed is None:
                    say("the speed cost was not measured: a benchmark engine failed (see resnet-deploy bench on the files)")
            return candidate, result
    raise VerificationError(
        f"no INT8 model within {max_drop_points} points: with every block but {result.ranking[-1]} in float the drop is "
        f"{result.chosen.drop_points:.2f} points; check the calibration data"
    )


def _speed_cost(fp32_path: Path, full: onnx.ModelProto, chosen: onnx.ModelProto, threads: int | None) -> SpeedCost | None:
    """The benchmark's own method (one worker per engine, interleaved rounds, medians) on the
    three files, onnxruntime's CPU provider at batch 1 (or the model's fixed batch); no eager
    baseline. None when an engine failed: no cost is better than a made-up one."""
    from dataclasses import replace

    from ..bench import BenchOptions, run_benchmark
    from ..bench.plan import plan_files
    from ..graph.io import save_onnx

    with tempfile.TemporaryDirectory(prefix="resnet-deploy-cost-") as tmp:
        paths = (fp32_path, Path(tmp, "int8_all_blocks.onnx"), Path(tmp, "int8_accuracy_aware.onnx"))
        save_onnx(full, paths[1])
        save_onnx(chosen, paths[2])
        batch = image_input(chosen).shape[0] or 1
        options = BenchOptions(files=paths, providers=["cpu"], batch_sizes=(batch,), threads=threads, duration=1.0, rounds=5)
        plan = plan_files(options, ["cpu"])
        onnx_engines = tuple(e for e in plan.engines if e.backend == "onnxruntime")
        # architecture None: no eager engine, so no torch import and no MAC count in the run.
        plan = replace(plan, engines=onnx_engines, baseline=onnx_engines[0].name, baseline_note="the fp32 file", architecture=None)
        records = {r.engine: r for r in run_benchmark(options, plan=plan).records}
    fp32, full_r, chosen_r = runs = [records[e.name] for e in onnx_engines]
    if any(r.error or not r.p50_ms for r in runs):
        return None
    return SpeedCost(fp32.p50_ms, full_r.p50_ms, chosen_r.p50_ms, batch, fp32.threads or 0, fp32.rounds or 0,  # type: ignore[arg-type]
                     any(r.unstable for r in runs))
