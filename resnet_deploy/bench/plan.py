"""Which engines run, and which one is the baseline.

For a model of the zoo, the ``bench`` entries of :data:`.catalogue.CATALOGUE` (the one place
engines are declared) that this machine runs. For ONNX files given on the command line,
:func:`plan_files` builds one onnxruntime engine per (file, provider) instead.
"""

from __future__ import annotations

import importlib.util
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._errors import InputError
from .._hashing import file_sha256
from ..graph.embedding import is_features_file
from ..runtime import available_providers
from ..runtime.config import GPU_PROVIDERS
from ..runtime.raw_images import check_image_provider
from .catalogue import BASELINE, CATALOGUE, machine_capabilities
from .inputs import ModelFile, read_model_file
from .options import PRECISIONS, BenchOptions
from .profiled import profile_engine
from .schema import Engine

__all__ = ["Plan", "plan_engines", "plan_files", "plan_zoo", "MAX_FILE_ENGINES", "GPU_PROVIDERS"]

# Every engine keeps a worker process, its session and model alive through the interleaved
# rounds of a batch size: ONNX files given on the command line make at most this many engines
# (files x providers). The zoo's engines are bounded by the catalogue.
MAX_FILE_ENGINES = 16


@dataclass(frozen=True)
class Plan:
    """The engines of one run, the baseline among them, and the input they share."""

    engines: tuple[Engine, ...]
    baseline: str
    baseline_note: str
    image_shape: tuple[int, int, int]  # C, H, W
    input_dtype: str = "float32"
    architecture: str | None = None  # for PyTorch engines and the MAC count
    num_classes: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)  # preprocessing of evaluation images
    files: tuple[ModelFile, ...] = ()
    classes: int | None = None  # the logits' width: evaluation labels must lie in 0..classes-1


def _capabilities(options: BenchOptions) -> set[str]:
    caps = machine_capabilities()
    if options.compile:
        caps.add("compile")
    try:
        import torch

        if torch.cuda.is_available():
            caps.add("torch-cuda")
    except Exception:  # a broken CUDA install only removes the eager GPU engines
        pass
    return caps


def plan_engines(options: BenchOptions, providers: list[str] | None = None) -> list[Engine]:
    """The catalogue's engines this machine runs, filtered by the options; eager fp32 on the CPU
    (the baseline) always runs, other CPU engines unless ``providers`` leaves the CPU out."""
    chosen = set(providers or options.providers or available_providers())
    precisions = set(options.precisions or PRECISIONS)
    caps = _capabilities(options)
    runnable = [e.engine for e in CATALOGUE if e.bench and e.needs <= caps]
    if options.engines:
        unknown = set(options.engines) - {e.name for e in runnable}
        if unknown:
            raise InputError(f"unknown engine {sorted(unknown)[0]!r}; engines here: "
                             f"{', '.join(e.name for e in runnable)}")
    allowed = chosen if (providers or options.providers) else chosen | {"cpu"}
    return [
        e for e in runnable
        if e.name == BASELINE
        or (e.provider in allowed and e.precision in precisions and (not options.engines or e.name in options.engines))
    ]


def plan_zoo(options: BenchOptions, providers: list[str] | None) -> Plan:
    from .. import get_model_spec  # imports the zoo (and torch)

    spec = get_model_spec(options.model)
    preprocessing = {"mean": spec.mean, "std": spec.std, "resize_size": spec.resize_size, "crop_size": spec.image_size}
    return Plan(tuple(plan_engines(options, providers)), BASELINE, "eager PyTorch fp32 on the CPU",
                (3, spec.image_size, spec.image_size), architecture=options.model, metadata=preprocessing,
                classes=spec.num_classes)


def _eager_baseline(first: ModelFile, weights: str | Path | None) -> tuple[bool, str]:
    """Whether eager PyTorch can reproduce the first file, and why (not)."""
    if first.takes_images:
        return False, (f"{first.path.name} has its preprocessing in the graph (uint8 images in), "
                       "which eager PyTorch does not")
    if is_features_file(first.metadata):  # the eager zoo model ends in its classifier: nothing to compare with
        return False, f"{first.path.name} outputs embeddings, and the eager baseline rebuilds the classifier"
    arch = first.metadata.get("architecture")
    recorded = str(first.metadata.get("weights", ""))
    if not isinstance(arch, str) or not arch:
        return False, f"{first.path.name} carries no architecture metadata"
    if importlib.util.find_spec("torch") is None:
        return False, "torch is not installed"
    from .. import list_models  # imports the zoo

    if arch not in list_models():
        return False, f"{first.path.name}'s architecture {arch!r} is not in this toolkit's zoo"
    if weights is None:
        if recorded.startswith("random init"):
            return True, f"{first.path.name} is {arch} with seeded random weights, rebuilt in PyTorch"
        return False, (f"{first.path.name} was exported from {recorded or 'unknown weights'}; "
                       "pass --weights for an eager baseline")
    digest = re.search(r"sha256 ([0-9a-f]+)", recorded)
    if digest is None or not file_sha256(weights).startswith(digest.group(1)):
        raise InputError(f"--weights {Path(weights).name} is not what {first.path.name} was exported from "
                         f"({recorded or 'no record'})")
    return True, f"{first.path.name} is {arch} with weights {Path(weights).name}, rebuilt in PyTorch"


def _names(files: list[ModelFile]) -> list[str]:
    stems = [f.path.stem for f in files]
    return [s if stems.count(s) == 1 else f"{s}-{i + 1}" for i, s in enumerate(stems)]


def plan_files(options: BenchOptions, providers: list[str]) -> Plan:
    """One onnxruntime engine per (file, provider); eager PyTorch first when it can rebuild the first file."""
    count = len(options.files) * len(providers)
    if count > MAX_FILE_ENGINES:  # before any file is read
        raise InputError(f"{len(options.files)} files on {len(providers)} provider(s) make {count} engines; "
                         f"bench measures at most {MAX_FILE_ENGINES} side by side, "
                         "each keeping a worker process alive: split them over several runs")
    files = [read_model_file(p) for p in options.files]
    first = files[0]
    for f in files[1:]:
        if f.shape[1:] != first.shape[1:]:
            raise InputError(f"{f.path.name} takes {list(f.shape)}, {first.path.name} {list(first.shape)}: "
                             "files must share the input shape")
    for f in files:
        for b in options.batch_sizes:
            f.check_batch(b)
        if f.takes_images:
            for p in providers:
                # OpenVINO's antialiased Resize is not PIL's: refused as Predictor refuses it
                check_image_provider(p, f.path)
    if first.takes_images and options.eval_data is not None:
        raise InputError(f"{first.path.name} takes images as they are; --eval-data holds preprocessed inputs: "
                         "measure accuracy on the float file")
    engines: list[Engine] = []
    eager, why = _eager_baseline(first, options.weights)
    if eager:
        engines.append(Engine(BASELINE, "pytorch", "cpu", "fp32", description="torch eager, NCHW (the baseline)"))
    for i, (name, f) in enumerate(zip(_names(files), files)):
        if i == 0 and options.profile is not None:  # the profile's configuration, as it is served
            engines.append(profile_engine(options.profile, name))
            continue
        for p in providers:
            engines.append(Engine(name if len(providers) == 1 else f"{name}-{p}", "onnxruntime", p, f.precision,
                                  str(f.path), {}, f"{f.path.name} as it is, {p} provider"))
    baseline = BASELINE if eager else engines[0].name
    note = f"eager PyTorch fp32: {why}" if eager else f"{baseline} (the first file): {why}"
    if options.urls:  # the same model served by Triton: client-side figures beside the in-process ones
        from .served import check_served, served_engines

        served = options.served_model or first.path.stem
        for url in options.urls:
            check_served(url, served)  # before any work: a server down or without the model is one line
        from .served_match import baseline_notes, in_process

        for note in baseline_notes(list(options.urls), served, in_process(first.path, options.profile, providers)):
            warnings.warn(note, UserWarning, stacklevel=3)  # the CLI prints one warning: line each
        engines += served_engines(list(options.urls), served, classes=first.classes, timeout=options.request_timeout)
    arch = first.metadata.get("architecture") if eager else None
    classes = first.metadata.get("num_classes") if eager else None
    return Plan(tuple(engines), baseline, note, tuple(first.shape[1:]), first.dtype,  # type: ignore[arg-type]
                arch, classes if isinstance(classes, int) else None, first.metadata, tuple(files), first.classes)
