"""Where a deployment diverges: two sides of one ResNet compared block by block.

A side is an ONNX file on a provider: an fp32 file against its INT8 file, or one file on the
CPU against OpenVINO. Each side runs a copy of its graph whose outputs also expose every
block's output (:mod:`.blocks`); its logits are checked bit-identical to the unmodified graph
on the same provider, so the probes do not change what they measure. Per block: the max
relative error ``max|b - a| / max|a|`` (the metric of ``export``), the cosine similarity of the
worst sample, and at the head the top-1 agreement. The first block over the tolerance is named.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import onnx

from .._errors import InputError, NonFiniteOutputError, OnnxModelError
from ..graph.blocks import Block, dequantize, expose, find_blocks
from ..graph.io import image_input, read_metadata
from ..graph.fp16 import is_quantized
from .inputs import load_inputs, load_model
from .stats import BlockRow, Running, block_rows

__all__ = ["BlockRow", "CompareResult", "Side", "compare_models", "compare_files", "DEFAULT_TOLERANCE", "run_blocks",
           "load_inputs", "compare_with_eager", "block_rows", "DEFAULT_TOLERANCES", "default_tolerance", "block_chunks",
           "MAX_SAMPLES"]

DEFAULT_TOLERANCE = 1e-3  # fp32 against fp32
# The default tolerance per precision: the lossier side of the pair decides. INT8 rounds every
# activation to 1 of 256 steps: a good calibration of the digits ResNet-20 (held-out accuracy
# equal to fp32's) measured 1.4e-2 (stem) to 1.1e-1 (head), cosine >= 0.9987, on held-out scans;
# a half-scale calibration (13 points lost) 0.49 at the stem. fp16 keeps 11 mantissa bits.
DEFAULT_TOLERANCES = {"fp32": DEFAULT_TOLERANCE, "fp16": 1e-2, "int8": 0.25}
_CHUNK = 8  # samples per run: ResNet-50's block outputs are ~22 MB per sample, and only one chunk is kept
# Inputs are held whole (0.6 MB per 224x224 sample: 600 MB at the cap); the block outputs are not.
MAX_SAMPLES = 1000


@dataclass(frozen=True)
class Side:
    """One side of a comparison: a model (and where it came from) on a provider."""

    model: onnx.ModelProto
    provider: str = "cpu"
    label: str = "model"
    file: str | None = None  # the file's name, for messages about the file itself


@dataclass
class CompareResult:
    a: str
    b: str
    samples: int
    tolerance: float
    rows: list[BlockRow]
    probes_exact: bool = True  # logits with probes == logits without, bit for bit, on both sides
    notes: list[str] = field(default_factory=list)
    tolerance_from: str = "given"  # or the precision whose default it is: "fp32", "fp16", "int8"

    @property
    def first_over(self) -> str | None:
        return next((r.name for r in self.rows if r.over_tolerance), None)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["first_over_tolerance"] = self.first_over
        return out


def block_chunks(side: Side, blocks: list[Block], x: np.ndarray, *,
                 threads: int | None = None) -> Iterator[tuple[list[np.ndarray], bool]]:
    """Every block's output (float32) on ``x``, :data:`_CHUNK` samples at a time, and whether the
    probes left the logits of that chunk unchanged. A comparison keeps only running statistics,
    so its memory is that of one chunk whatever the number of samples."""
    from ..runtime import SessionConfig, create_session

    probed = expose(side.model, blocks)
    config = SessionConfig(provider=side.provider, threads=threads)
    session, _ = create_session(probed.SerializeToString(), config)
    plain, _ = create_session(side.model.SerializeToString(), config)
    names = [b.probe.tensor for b in blocks]
    name = session.get_inputs()[0].name
    for start in range(0, len(x), _CHUNK):
        chunk = np.ascontiguousarray(x[start : start + _CHUNK])
        values = session.run(names, {name: chunk})
        reference = plain.run(None, {name: chunk})[0]
        exact = np.array_equal(values[-1], reference, equal_nan=True)  # NaN from the data is no probe's doing
        yield [dequantize(side.model, block.probe, value) for block, value in zip(blocks, values)], exact


def run_blocks(side: Side, blocks: list[Block], x: np.ndarray, *,
               threads: int | None = None) -> tuple[list[np.ndarray], bool]:
    """Every block's output (float32) on all of ``x``, and whether the probes left the logits unchanged."""
    chunks = list(block_chunks(side, blocks, x, threads=threads))
    return [np.concatenate([c[i] for c, _ in chunks]) for i in range(len(blocks))], all(e for _, e in chunks)


def precision_of(model: onnx.ModelProto) -> str:
    """``int8`` (quantization ops), ``fp16`` (fp16 weights) or ``fp32``."""
    if is_quantized(model):
        return "int8"
    return "fp16" if any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer) else "fp32"


def default_tolerance(*models: onnx.ModelProto) -> tuple[float, str]:
    """The default tolerance of a comparison: that of its lossiest side's precision."""
    precision = max((precision_of(m) for m in models), key=lambda p: DEFAULT_TOLERANCES[p])
    return DEFAULT_TOLERANCES[precision], precision


def _positional(names: list[str]) -> bool:
    return all(n in ("stem", "head") or re.fullmatch(r"block\d+", n) for n in names)


def _match_blocks(a: Side, b: Side, blocks_a: list[Block], blocks_b: list[Block]) -> tuple[list[str], list[str]]:
    """The row names, and notes: blocks are found from the structure, in execution order, so two
    files with as many blocks are matched one to one even where one side's weights were renamed
    (by another tool: positional names ``block1`` ...); two different sets of layer names, or
    different counts, are different models."""
    shape_a = image_input(a.model, a.label).shape[1:]
    shape_b = image_input(b.model, b.label).shape[1:]
    if shape_a != shape_b:
        raise OnnxModelError(f"the models take different inputs: {a.label} {list(shape_a)}, {b.label} {list(shape_b)}")
    names_a, names_b = [blk.name for blk in blocks_a], [blk.name for blk in blocks_b]
    if names_a == names_b:
        return names_a, []
    if len(names_a) == len(names_b) and (_positional(names_a) or _positional(names_b)):
        named, other = (names_b, a.label) if _positional(names_a) else (names_a, b.label)
        return named, [f"{other} names its weights differently; its blocks were matched by position in the graph"]
    raise OnnxModelError(
        f"the models have different blocks: {a.label} has {len(names_a)} ({', '.join(names_a)}), "
        f"{b.label} has {len(names_b)} ({', '.join(names_b)})"
    )


def _check_reference(label: str, names: list[str], outs: list[np.ndarray], x: np.ndarray) -> None:
    """The reference must compute finite values: an error measured against Inf or NaN is no
    number (finite but huge inputs overflow float32 in the first blocks)."""
    for name, value in zip(names, outs):
        if not np.all(np.isfinite(value)):
            raise NonFiniteOutputError(
                f"the reference {label} computed non-finite values in block {name} on these inputs (largest |input| "
                f"{float(np.max(np.abs(x))):.3g}): nothing to compare against (broken weights, or inputs too large "
                "for float32: check the data's preprocessing)")


def _tolerance(tolerance: float | None, *models: onnx.ModelProto) -> tuple[float, str]:
    if tolerance is None:
        return default_tolerance(*models)
    if not tolerance > 0:
        raise InputError(f"tolerance must be positive, received {tolerance}")
    return tolerance, "given"


def compare_models(a: Side, b: Side, x: np.ndarray, *, tolerance: float | None = None,
                   threads: int | None = None) -> CompareResult:
    """Run ``x`` through both sides with every block exposed; one row per block, ``a`` the reference.
    ``tolerance`` None: the default of the lossier side's precision (:data:`DEFAULT_TOLERANCES`)."""
    tolerance, tolerance_from = _tolerance(tolerance, a.model, b.model)
    blocks_a, blocks_b = find_blocks(a.model, a.label), find_blocks(b.model, b.label)
    names, notes = _match_blocks(a, b, blocks_a, blocks_b)
    running = Running(names, (a.label, b.label))
    exact_a = exact_b = True
    for (outs_a, ea), (outs_b, eb) in zip(block_chunks(a, blocks_a, x, threads=threads),
                                          block_chunks(b, blocks_b, x, threads=threads)):
        _check_reference(a.label, names, outs_a, x)
        running.add(outs_a, outs_b)
        exact_a, exact_b = exact_a and ea, exact_b and eb
    if not (exact_a and exact_b):
        notes.append("exposing the block outputs changed the logits on "
                     + " and ".join(s.label for s, e in ((a, exact_a), (b, exact_b)) if not e)
                     + "; the per-block numbers describe the probed graph")
    return CompareResult(a.label, b.label, len(x), tolerance, running.rows(tolerance), exact_a and exact_b,
                         notes, tolerance_from)


def compare_with_eager(a: Side, weights: str | Path | None, x: np.ndarray, *, tolerance: float | None = None,
                       threads: int | None = None) -> CompareResult:
    """``a`` against the eager PyTorch model it was exported from (eager PyTorch is the reference)."""
    from .eager import eager_block_chunks

    tolerance, tolerance_from = _tolerance(tolerance, a.model)
    blocks = find_blocks(a.model, a.label)
    names = [blk.name for blk in blocks]
    label = f"eager PyTorch ({read_metadata(a.model).get('architecture')})"  # a missing one: the eager side refuses
    running = Running(names, (label, a.label))
    exact = True
    eager = eager_block_chunks(read_metadata(a.model), weights, x, names, label=a.file or a.label, chunk=_CHUNK)
    for reference, (outs, e) in zip(eager, block_chunks(a, blocks, x, threads=threads)):
        _check_reference(label, names, reference, x)
        running.add(reference, outs)
        exact = exact and e
    notes = [] if exact else [f"exposing the block outputs changed the logits on {a.label}; "
                              "the per-block numbers describe the probed graph"]
    return CompareResult(label, a.label, len(x), tolerance, running.rows(tolerance), exact, notes, tolerance_from)


def compare_files(
    a: str | Path,
    b: str | Path | None = None,
    *,
    providers: tuple[str, ...] = ("cpu",),
    data: str | Path | None = None,
    samples: int | None = None,
    tolerance: float | None = None,
    threads: int | None = None,
    eager: bool = False,
    weights: str | Path | None = None,
) -> CompareResult:
    """Compare two files on one provider, one file on two providers (``providers[0]`` is the
    reference), or with ``eager`` one file against the eager PyTorch model it was exported from
    (rebuilt from its metadata and ``weights``; the seeded random init needs none)."""
    from ..runtime import resolve_provider

    if samples is not None and (isinstance(samples, bool) or not isinstance(samples, int)
                                or not 1 <= samples <= MAX_SAMPLES):
        raise InputError(f"--samples must be between 1 and {MAX_SAMPLES:,}, received {samples!r}"
                         + (" (the inputs are held in memory; compare in several runs)"
                            if isinstance(samples, int) and samples > 1 else ""))
    if not 1 <= len(providers) <= 2:
        raise InputError(f"give one or two providers, received {len(providers)}: {', '.join(providers)}")
    if eager:
        if b is not None or len(providers) != 1:
            raise InputError("against eager PyTorch, give one file and one provider")
        model_a = load_model(a)
        provider = resolve_provider(providers[0])
        x = load_inputs(model_a, data, samples=samples, label=str(a))
        return compare_with_eager(Side(model_a, provider, f"{Path(a).name} on {provider}", Path(a).name), weights, x,
                                  tolerance=tolerance, threads=threads)
    if weights is not None:
        raise InputError("--weights is for the comparison against eager PyTorch (--eager)")
    if b is None and len(providers) != 2:
        raise InputError("one file is compared on two providers (e.g. cpu,openvino); or give a second file")
    resolved = [resolve_provider(p) for p in providers]
    pa, pb = resolved[0], resolved[-1]
    model_a = load_model(a)
    model_b = load_model(b) if b is not None else model_a
    label_a = f"{Path(a).name} on {pa}"
    label_b = f"{Path(b if b is not None else a).name} on {pb}"
    x = load_inputs(model_a, data, samples=samples, label=str(a))
    if b is not None:
        image_input(model_b, str(b))  # a non-image model says so before anything runs
    return compare_models(Side(model_a, pa, label_a), Side(model_b, pb, label_b), x, tolerance=tolerance,
                          threads=threads)

