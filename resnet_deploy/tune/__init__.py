"""``resnet-deploy tune``: the fastest verified way to run one model on this machine.

The candidates are the ``tune`` entries of the one engine catalogue
(:mod:`resnet_deploy.bench.catalogue`) this machine offers for the requested providers and
precisions (onnxruntime's CPU EP on the fp32 file, its INT8 QDQ file and a static-batch INT8
file; OpenVINO in fp32, bf16, INT8 and INT8 compiled for the batch; CUDA fp32/fp16 with and
without NHWC kernels and CUDA graphs; TensorRT). The benchmark harness measures them side by side
(each in its own process, interleaved rounds, the same fixed input) against the fp32 file on the
CPU EP, which is the reference for speed and for the error of every output. A candidate is
*verified* when its error is within the tolerance of its precision and, with evaluation data,
its accuracy drop is within ``max_accuracy_drop``; INT8 calibrated on synthetic data is measured
but never chosen. INT8 is judged on real inputs, never on the fixed standard-normal one (far from
anything it was calibrated on, its error there says nothing): by accuracy on the evaluation data,
or without labels by its logits' error on calibration samples held out of the calibration; INT8
made for CPUs with VNNI (``target_cpu``) is refused on a CPU without unless ``eval_data`` shows it
holds. The fastest verified candidate wins, and the profile records it.

One module per step: :mod:`.files` (the model files), :mod:`.candidates` (the catalogue
filtered), :mod:`.verdict` (verified or not, and why), :mod:`.output` (the profile and the
winner's model beside it).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from .._atomic import check_writable
from .._errors import InputError
from .._owned import owned_tempdir
from ..bench.catalogue import REFERENCE
from ..bench.inputs import read_model_file
from ..bench.options import BenchOptions, validate
from ..bench.plan import Plan
from ..precision.calibration import eval_arrays, output_classes
from ..precision.recipes import target_kernels
from ..image_input import is_image_input
from ..graph.embedding import is_features_file
from ..graph.io import image_input, load_onnx, read_metadata
from ..profile.deployment import DeploymentProfile
from ..runtime import available_providers, cpu_count
from ..runtime.model_info import int8_kernels_warning
from ..runtime.raw_images import check_image_provider
from .serving import ServingChoice, check_serving_options, choose_layout
from .candidates import candidates
from .files import HOLDOUT_EVERY, MIN_HOLDOUT_SOURCE, TUNE_MARKER, make_files
from .output import check_derived_model_paths, derived_model_paths, write_profile
from .verdict import TF32_TOLERANCE, TOLERANCES, HeldOut, Verdict, VerdictKind, judge

__all__ = ["TuneOptions", "TuneResult", "Verdict", "VerdictKind", "HeldOut", "tune", "derived_model_paths",
           "TOLERANCES", "TF32_TOLERANCE", "REFERENCE", "TUNE_MARKER", "HOLDOUT_EVERY", "MIN_HOLDOUT_SOURCE"]


@dataclass(kw_only=True)
class TuneOptions:
    """Options of :func:`tune`, by keyword."""

    model: str | Path
    output: str | Path
    providers: list[str] | None = None  # None: every available provider
    precisions: list[str] | None = None  # None: fp32, bf16, fp16, int8 where they apply
    batch_size: int = 1
    threads: int | None = None
    calibration: str | Path | None = None
    target_cpu: str = "auto"  # INT8 for this machine's class, CPUs with VNNI or any CPU (precision.recipes.TARGET_CPUS)
    eval_data: str | Path | None = None
    max_accuracy_drop: float = 1.0  # percentage points
    duration: float = 3.0
    rounds: int = 3
    cache_dir: str | Path | None = None
    force: bool = True  # replace an existing profile's model; the CLI passes its --force
    mode: str = "latency"  # or "throughput": instances x threads for a service (tune_serving)
    max_p99_ms: float | None = None  # throughput: the client-side p99 a layout may not exceed


@dataclass
class TuneResult:
    verdicts: list[Verdict]
    winner: Verdict
    profile: DeploymentProfile
    profile_path: Path
    synthetic_calibration: bool
    environment: dict[str, Any] = field(default_factory=dict)
    heldout: HeldOut | None = None  # how INT8 was judged without --eval-data
    serving: ServingChoice | None = None  # --mode throughput: the layouts measured and the one chosen
    embeds: bool = False  # a features file: its output is an embedding, not classes

    def usage(self) -> str:
        """How to run the profile: a features file has no classes to ``predict``, so its
        embeddings come from ``Predictor.embed`` and ``batch``."""
        path = str(self.profile_path)
        if self.embeds:
            return (f"use it: Predictor.from_profile({path!r}).embed(images), "
                    f"resnet-deploy batch --profile {path} IMAGES -o DIR")
        return f"use it: Predictor.from_profile({path!r}), resnet-deploy predict --profile {path} IMAGE"


def tune(options: TuneOptions, *, progress: Callable[[str], None] | None = None,
         on_step: Callable[[str, int, int], None] | None = None) -> TuneResult:
    """Measure every candidate, pick the fastest verified one, write the profile."""
    from ..bench.run import run_benchmark

    say = progress or (lambda _msg: None)
    output = Path(options.output)
    check_writable(output)
    if output.resolve() == Path(options.model).resolve():
        raise InputError(f"--output {output} is the model itself")
    orphans = check_derived_model_paths(options, output)
    check_serving_options(options.mode, options.max_p99_ms)
    target_kernels(options.target_cpu)  # an unknown target is refused before anything is measured
    if not 0 <= options.max_accuracy_drop <= 100:
        raise InputError(f"--max-accuracy-drop must be between 0 and 100 points, received {options.max_accuracy_drop}")
    bench = BenchOptions(files=(options.model,), providers=options.providers, batch_sizes=(options.batch_size,),
                         threads=options.threads, duration=options.duration, rounds=options.rounds,
                         eval_data=options.eval_data, cache_dir=options.cache_dir)
    resolved = validate(bench)  # refuses absurd durations, threads, batch sizes and unknown providers
    providers = resolved if options.providers else available_providers()
    precisions = set(options.precisions or TOLERANCES)
    unknown = precisions - set(TOLERANCES)
    if unknown:
        raise InputError(f"unknown precision {sorted(unknown)[0]!r}; expected one of {', '.join(TOLERANCES)}")
    takes_images = is_image_input(load_onnx(options.model))
    if takes_images and options.eval_data is not None:
        raise InputError(f"{Path(options.model).name} takes images as they are; --eval-data holds preprocessed inputs: "
                         "tune the float file for accuracy")
    if takes_images and "openvino" in providers:  # its antialiased Resize is not PIL's (runtime/raw_images.py)
        if options.providers and set(providers) == {"openvino"}:
            check_image_provider("openvino", options.model)
        providers = [p for p in providers if p != "openvino"]
        say("OpenVINO left out: its antialiased Resize does not compute the preprocessing in the graph as PIL does")
    with owned_tempdir("resnet-deploy-tune-") as tmp:
        if options.eval_data is not None:  # bad labels are refused before the quantization, not after
            source = load_onnx(options.model)
            eval_arrays(
                options.eval_data, image_input(source, options.model).batch_shape(1)[1:],  # type: ignore[arg-type]
                read_metadata(source), Path(tmp), classes=output_classes(source))
        files, synthetic, heldout = make_files(options, Path(tmp), precisions, providers, say)
        kernels = int8_kernels_warning(read_metadata(load_onnx(files["int8"])), "INT8") if "int8" in files else None
        chosen = candidates(files, providers, precisions, options.batch_size)
        fp32 = read_model_file(files["portable"])  # (an image-input file: the benchmark photo, uint8)
        plan = Plan(tuple(c.engine for c in chosen), REFERENCE,
                    f"{REFERENCE}: {Path(options.model).name} on the CPU EP",
                    tuple(fp32.shape[1:]), fp32.dtype, metadata=fp32.metadata,  # type: ignore[arg-type]
                    classes=fp32.classes)
        result = run_benchmark(replace(bench, providers=None), progress=progress, on_step=on_step, plan=plan)
        by_name = {r.engine: r for r in result.records}
        reference = by_name[REFERENCE]
        verdicts = [judge(by_name[c.engine.name], c.engine.backend, c.session, reference, synthetic=synthetic,
                          heldout=heldout, max_accuracy_drop=options.max_accuracy_drop, kernels_warning=kernels)
                    for c in chosen]
        eligible = [v for v in verdicts if v.verified and v.record.provider in providers]
        if not eligible:
            raise InputError("no candidate was verified on this machine: "
                             + "; ".join(f"{v.record.engine}: {v.reason}" for v in verdicts))
        winner = min(eligible, key=lambda v: v.record.p50_ms or float("inf"))
        serving = None
        if options.mode == "throughput":  # the most images/s under the p99 bound, over layouts of the cores
            serving = choose_layout([c.engine for c in chosen if c.engine.name in {v.record.engine for v in eligible}],
                                    chosen[0].engine, plan, replace(bench, providers=None),
                                    cores=options.threads or cpu_count(), max_p99_ms=options.max_p99_ms,
                                    run=run_benchmark)
            winner = next(v for v in eligible if v.record.engine == serving.best.engine)
        profile = write_profile(options, output, winner, verdicts, Path(winner.record.source or files["portable"]),
                                synthetic, orphans, serving)
    # Synthetic calibration matters only where INT8 was measured (not with --precision fp32, say).
    return TuneResult(verdicts, winner, profile, output, synthetic and "int8" in files, result.environment, heldout,
                      serving, embeds=is_features_file(fp32.metadata or {}))

