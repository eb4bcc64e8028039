"""Accuracy-aware INT8: the model that keeps the fewest blocks in float for an accuracy budget.

NNCF's accuracy-controlled quantization, on onnxruntime's quantizer: quantize every block; while
the accuracy drop on labelled evaluation data exceeds the bound, keep the next most sensitive
block in float (``nodes_to_exclude``, by :func:`~.quantize.quantize_model`'s ``keep_float``): the
shortest such prefix of the ranking, every trial reported. The ranking quantizes one block at a
time (:func:`each_block_alone`), what ``quantize --sensitivity`` reports as a table
(:mod:`resnet_deploy.diagnostics.sensitivity`).

Every trial runs as deployed (:func:`~resnet_deploy.runtime.execution.cpu_logits`: the integer
kernels of this CPU) and with the weight scales asked for (``recipe``: per channel or per tensor).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import onnx

from .._errors import InputError, VerificationError
from ..graph.blocks import find_blocks
from ..graph.io import image_input, read_metadata
from ..runtime.execution import cpu_logits
from .calibration import DEFAULT_MAX_SAMPLES, load_eval_data, load_samples
from .fidelity import fidelity, outputs_embeddings
from .quantize import quantize_model
from .recipes import DEFAULT_RECIPE, QuantRecipe
from .source import load_quantizable

__all__ = ["Trial", "SpeedCost", "AccuracyAwareResult", "TrialRunner", "Prepared", "prepare", "each_block_alone",
           "quantize_accuracy_aware"]


@dataclass
class Trial:
    """One quantized variant: which blocks are quantized (or kept float) and what it measured."""

    quantized: list[str]
    float_blocks: list[str]
    accuracy: float | None  # on the evaluation data, when given
    drop_points: float | None  # fp32 accuracy minus this one, in percentage points
    top1_agreement: float | None  # with fp32, on the evaluation (or calibration) inputs; None for embeddings
    max_rel_error: float

    @property
    def cost(self) -> tuple[float, float]:
        # Accuracy first; the logits' error breaks ties (most single blocks cost no accuracy at all).
        return (self.drop_points or 0.0, self.max_rel_error)


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
    speed: SpeedCost | None = None  # measured by the benchmark when a block was kept in float
    model: onnx.ModelProto | None = field(default=None, repr=False, compare=False)  # the chosen graph
    all_int8: onnx.ModelProto | None = field(default=None, repr=False, compare=False)  # every block quantized

    @property
    def chosen(self) -> Trial:
        return self.trials[-1]

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k not in ("model", "all_int8")}
        out["path"] = str(self.path) if self.path else None
        out["float_blocks"] = self.chosen.float_blocks
        return out


class TrialRunner:
    """fp32's outputs on the evaluation inputs, computed once; each variant judged against them."""

    def __init__(self, fp32: onnx.ModelProto, x: np.ndarray, y: np.ndarray | None, threads: int | None) -> None:
        self.x, self.y, self.threads = x, y, threads
        self.embeddings = outputs_embeddings(fp32)
        self.reference = cpu_logits(fp32, x, threads)
        self.fp32_accuracy = float(np.mean(self.reference.argmax(1) == y)) if y is not None else None

    def trial(self, model: onnx.ModelProto, quantized: list[str], float_blocks: list[str]) -> Trial:
        logits = cpu_logits(model, self.x, self.threads)
        found = fidelity(logits, self.reference, embeddings=self.embeddings)
        acc = float(np.mean(logits.argmax(1) == self.y)) if self.y is not None else None
        drop = 100 * (self.fp32_accuracy - acc) if acc is not None and self.fp32_accuracy is not None else None
        return Trial(quantized, float_blocks, acc, drop, found.top1_agreement, found.max_rel_error)


@dataclass(frozen=True)
class Prepared:
    """What every block-wise path starts from: the fp32 graph, its calibration samples, its blocks,
    and the inputs trials run on (the evaluation data, or the calibration samples without labels)."""

    model: onnx.ModelProto
    samples: np.ndarray
    names: list[str]
    x: np.ndarray
    y: np.ndarray | None


def prepare(model_path: str | Path, calibration: str | Path, eval_data: str | Path | None, max_samples: int | None,
            say: Callable[[str], None]) -> Prepared:
    """Load and check all of it. A features file is refused with labels: it has no classes to score."""
    model, notes = load_quantizable(model_path)
    if eval_data is not None and outputs_embeddings(model):
        raise InputError(f"{model_path} outputs embeddings (a features file): it has no classes to score against the "
                         f"labels of {eval_data}; quantize it without --eval-data "
                         "(cosine similarity to fp32 is reported)")
    for note in notes:
        say(note)
    samples = load_samples(calibration, image_input(model, model_path).shape, read_metadata(model),
                           max_samples=max_samples)
    names = [b.name for b in find_blocks(model, str(model_path))]
    if eval_data is None:
        return Prepared(model, samples, names, samples, None)
    x, y = load_eval_data(eval_data, model, str(model_path))
    return Prepared(model, samples, names, x, y)


def each_block_alone(runner: TrialRunner, model: onnx.ModelProto, samples: np.ndarray, names: list[str], *, method: str,
                     recipe: QuantRecipe, source: str, say: Callable[[str], None]) -> list[Trial]:
    """One trial per block, quantized alone (every other block float), the costliest first."""
    trials = []
    for name in names:
        say(f"quantizing {name} alone")
        others = [n for n in names if n != name]
        one = quantize_model(model, samples, method=method, recipe=recipe, source=source, keep_float=others).model
        trials.append(runner.trial(one, [name], others))
    return sorted(trials, key=lambda t: t.cost, reverse=True)


def quantize_accuracy_aware(
    model_path: str | Path,
    calibration: str | Path,
    eval_data: str | Path,
    *,
    max_drop_points: float,
    method: str = "minmax",
    recipe: QuantRecipe = DEFAULT_RECIPE,
    max_samples: int | None = DEFAULT_MAX_SAMPLES,
    threads: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> AccuracyAwareResult:
    """INT8 with the fewest most-sensitive blocks kept in float so that the accuracy drop on
    ``eval_data`` is at most ``max_drop_points`` percentage points. The result holds the chosen
    graph (``model``, not saved: ``path`` is None) and the all-INT8 one it was measured against."""
    say = progress or (lambda _msg: None)
    if not max_drop_points >= 0:
        raise InputError(f"the maximum accuracy drop must be >= 0 points, received {max_drop_points}")
    data = prepare(model_path, calibration, eval_data, max_samples, say)
    runner = TrialRunner(data.model, data.x, data.y, threads)
    fp32_accuracy = float(runner.fp32_accuracy or 0.0)  # labels given: never None here
    say(f"fp32 accuracy {fp32_accuracy:.2%} on {len(data.x)} samples; quantizing every block")
    source = str(model_path)
    full = quantize_model(data.model, data.samples, method=method, recipe=recipe, source=source).model
    result = AccuracyAwareResult(None, fp32_accuracy, max_drop_points, [], model=full, all_int8=full)
    result.trials.append(runner.trial(full, data.names, []))
    if (result.chosen.drop_points or 0.0) <= max_drop_points:
        return result
    say(f"full INT8 drops {result.chosen.drop_points:.2f} points; measuring each block's sensitivity")
    ranking = each_block_alone(runner, data.model, data.samples, data.names, method=method, recipe=recipe,
                               source=source, say=say)
    result.ranking = [t.quantized[0] for t in ranking]
    for k in range(1, len(data.names)):
        keep = result.ranking[:k]
        say(f"keeping {', '.join(keep)} in float")
        result.model = quantize_model(data.model, data.samples, method=method, recipe=recipe, source=source,
                                      keep_float=keep).model
        result.trials.append(runner.trial(result.model, [n for n in data.names if n not in keep], keep))
        if (result.chosen.drop_points or 0.0) <= max_drop_points:
            return result
    raise VerificationError(
        f"no INT8 model within {max_drop_points} points: with every block but {result.ranking[-1]} in float "
        f"the drop is {result.chosen.drop_points:.2f} points; check the calibration data"
    )
