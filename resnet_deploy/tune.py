"""``resnet-deploy tune``: the fastest verified way to run one model on this machine.

The candidates are the configurations this machine offers for the requested providers and
precisions (onnxruntime's CPU EP on the fp32 file, its INT8 QDQ file and a static-batch INT8
file; OpenVINO in fp32, bf16, INT8 and INT8 compiled for the batch; CUDA fp32/fp16 with and
without NHWC kernels and CUDA graphs; TensorRT). The benchmark harness measures them side by side
(each in its own process, interleaved rounds, the same fixed input) against the fp32 file on the
CPU EP, which is the reference for speed and for the error of every output. A candidate is
*verified* when its error is within the tolerance of its precision and, with evaluation data,
its accuracy drop is within ``max_accuracy_drop``; INT8 calibrated on synthetic data is measured
but never chosen. INT8 is judged on real inputs, never on the fixed standard-normal one (far from
anything it was calibrated on, its error there says nothing): by accuracy on the evaluation data,
or without labels by its logits' error on calibration samples held out of the calibration. The
fastest verified candidate wins, and the profile records it.
"""

from __future__ import annotations

import datetime
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import onnx

from . import __version__
from ._atomic import atomic_write_bytes, check_distinct, check_new, check_writable
from ._errors import InputError, OnnxModelError, OutputPathError
from .bench.inputs import read_model_file
from .calibration import eval_arrays, output_classes
from .bench.options import BenchOptions, validate
from .bench.plan import Plan
from .bench.schema import Engine, Record
from .calibration import DEFAULT_MAX_SAMPLES, load_samples
from .image_input_graph import classifier_and_spec, is_image_input
from .image_input_verify import image_input_stage
from ._machine import cpu_flags, machine
from .onnx_io import image_input, load_onnx, model_files, read_metadata, save_onnx, write_metadata
from .passes.unfuse_fused_conv import is_standard
from .precision import convert_fp16, is_quantized
from .profile import DeploymentProfile, model_sha256, save_profile
from .runtime import available_providers, cpu_count
from .tune_serving import ServingChoice, check_serving_options, choose_layout
from .runtime.providers import PROVIDERS, openvino_backend
from .runtime.raw_images import check_image_provider
from .verify import DEFAULT_RTOL, fixed_inputs

__all__ = ["TuneOptions", "TuneResult", "Verdict", "HeldOut", "tune", "TOLERANCES", "REFERENCE"]

REFERENCE = "ort-fp32"
# Max relative logit error against the fp32 file on the CPU EP, per precision. fp32: the
# export's own parity tolerance. bf16/fp16 keep 8/11 mantissa bits (measured 2.9e-3 and 1e-3 on
# ResNets). INT8: the error of a well-calibrated QDQ ResNet-50 (1.7e-2 to 2.4e-2 measured) with
# headroom; accuracy on real data (eval data) is the test that matters and is applied on top.
TOLERANCES = {"fp32": DEFAULT_RTOL, "bf16": 2e-2, "fp16": 2e-2, "int8": 1e-1}
# fp32 on NVIDIA GPUs: onnxruntime's CUDA EP runs convolutions in TF32 by default (`use_tf32`,
# default 1; 10 mantissa bits, like fp16): 3.5e-4 to 5.4e-4 measured on an H200, so the fp32 CPU
# tolerance would reject every CUDA fp32 candidate for a choice onnxruntime makes by default.
TF32_TOLERANCE = 2e-3
# Without --eval-data, one calibration sample in HOLDOUT_EVERY is held out of the calibration
# and INT8 is judged on those (from MIN_HOLDOUT_SOURCE samples; fewer: only --eval-data decides).
# The digits ResNet-20, calibrated on 96 training scans: 1.4e-2 on the 32 held out, 7.9e-1 on the
# fixed standard-normal input that used to decide.
HOLDOUT_EVERY = 4
MIN_HOLDOUT_SOURCE = 8
# Metadata of the model files tune makes (INT8, fp16): the profile they were made for. A file
# beside a profile that does not exist, marked for it, is the orphan of a run killed between
# the two writes; the next run replaces (or removes) it without --force.
TUNE_MARKER = "tune_profile"


@dataclass(frozen=True)
class HeldOut:
    """INT8 against fp32 on calibration samples left out of the calibration (onnxruntime CPU)."""

    samples: int
    max_rel_error: float
    top1_agreement: float


@dataclass
class TuneOptions:
    model: str | Path
    output: str | Path
    providers: list[str] | None = None  # None: every available provider
    precisions: list[str] | None = None  # None: fp32, bf16, fp16, int8 where they apply
    batch_size: int = 1
    threads: int | None = None
    calibration: str | Path | None = None
    eval_data: str | Path | None = None
    max_accuracy_drop: float = 1.0  # percentage points
    duration: float = 3.0
    rounds: int = 3
    cache_dir: str | Path | None = None
    force: bool = True  # replace an existing profile's model; the CLI passes its --force
    mode: str = "latency"  # or "throughput": instances x threads for a service (tune_serving)
    max_p99_ms: float | None = None  # throughput: the client-side p99 a layout may not exceed


@dataclass(frozen=True)
class Verdict:
    record: Record
    backend: str  # the benchmark backend that ran it: "onnxruntime" or "openvino" (the runtime itself)
    session: dict[str, Any]
    verified: bool
    reason: str


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


@dataclass(frozen=True)
class _Candidate:
    engine: Engine
    session: dict[str, Any]  # SessionConfig fields for the profile


def _candidates(files: dict[str, Path], providers: list[str], precisions: set[str], batch: int) -> list[_Candidate]:
    """Every configuration worth measuring here, the reference first."""
    out = [_Candidate(Engine(REFERENCE, "onnxruntime", "cpu", "fp32", str(files["fp32"]), {},
                             "onnxruntime CPU EP, the fp32 file (the reference)"), {"optimization": "all"})]

    def add(name: str, backend: str, provider: str, precision: str, artifact: str, description: str,
            session: dict[str, Any], **options: Any) -> None:
        if provider in providers and precision in precisions and artifact in files:
            out.append(_Candidate(Engine(name, backend, provider, precision, str(files[artifact]), options, description), session))

    add("ort-int8", "onnxruntime", "cpu", "int8", "int8", "onnxruntime CPU EP, INT8 QDQ (U8S8, per-channel)", {})
    add("ort-int8-static", "onnxruntime", "cpu", "int8", "int8_static", "onnxruntime CPU EP, INT8 QDQ, static batch", {})
    bf16 = bool({"avx512_bf16", "amx_bf16"} & cpu_flags())
    if openvino_backend() == "runtime":
        add("ov-fp32", "openvino", "openvino", "fp32", "fp32", "OpenVINO runtime, f32 hint", {})
        if bf16:
            add("ov-bf16", "openvino", "openvino", "bf16", "fp32", "OpenVINO runtime, bf16 hint",
                {"openvino_precision": "BF16"}, hint="bf16")
        add("ov-int8", "openvino", "openvino", "int8", "int8", "OpenVINO runtime, INT8 QDQ", {})
        add("ov-int8-static", "openvino", "openvino", "int8", "int8", "OpenVINO runtime, INT8 QDQ compiled for the batch",
            {"static_batch": batch}, static=True)
    else:
        add("ov-fp32", "onnxruntime", "openvino", "fp32", "fp32", "OpenVINO EP, f32 hint", {})
        if bf16:
            add("ov-bf16", "onnxruntime", "openvino", "bf16", "fp32", "OpenVINO EP, bf16 hint",
                {"openvino_precision": "BF16"}, openvino_precision="BF16")
        add("ov-int8", "onnxruntime", "openvino", "int8", "int8", "OpenVINO EP, INT8 QDQ", {})
        add("ov-int8-static", "onnxruntime", "openvino", "int8", "int8_static", "OpenVINO EP, INT8 QDQ, static batch", {})
    gpu = {"prefer_nhwc": True, "cuda_graph": True}
    add("cuda-fp32", "onnxruntime", "cuda", "fp32", "fp32", "CUDA EP, IO binding", {})
    add("cuda-fp32-nhwc-graph", "onnxruntime", "cuda", "fp32", "fp32", "CUDA EP, NHWC, CUDA graph", gpu, **gpu)
    add("cuda-fp16", "onnxruntime", "cuda", "fp16", "fp16", "CUDA EP, fp16 file", {})
    add("cuda-fp16-nhwc-graph", "onnxruntime", "cuda", "fp16", "fp16", "CUDA EP, fp16 file, NHWC, CUDA graph", gpu, **gpu)
    add("trt-fp16", "onnxruntime", "tensorrt", "fp16", "fp32", "TensorRT EP, fp16", {"fp16": True}, fp16=True)
    for c in out:  # the options an engine runs with are the ones its profile must record
        c.session.update({k: v for k, v in c.engine.options.items() if c.engine.backend == "onnxruntime"})
    return out


def _prepare(options: TuneOptions, folder: Path, precisions: set[str], providers: list[str],
             say: Callable[[str], None]) -> tuple[dict[str, Path], bool, HeldOut | None]:
    """The files the candidates run: the fp32 file as given, INT8 and fp16 made from it; and
    without evaluation data, INT8 measured on calibration samples held out of its calibration."""
    # An image-input file: INT8 and fp16 are made from the float classifier inside, and the float
    # preprocessing put back in front (verified on photos), as quantize and optimize do.
    model, spec = classifier_and_spec(load_onnx(options.model), None, source=str(options.model))
    if not all(is_standard(n) for n in model.graph.node):
        raise OnnxModelError(f"{options.model} holds onnxruntime-specific ops; tune starts from a portable file "
                             "(resnet-deploy export, or optimize --target portable)")
    if is_quantized(model):
        raise OnnxModelError(f"{options.model} is already quantized; tune starts from the fp32 file and makes INT8 itself")
    image = image_input(model, options.model)
    if image.shape[0] is not None and image.shape[0] != options.batch_size:
        raise InputError(f"{Path(options.model).name} has a static batch of {image.shape[0]}; use --batch-size {image.shape[0]}")
    files = {"fp32": Path(options.model)}
    synthetic = options.calibration is None
    heldout = None
    if "int8" in precisions and (set(providers) & {"cpu", "openvino"}):
        from .quantize import quantize_model  # onnxruntime's quantization tools

        shape = image.batch_shape(1)
        if synthetic:
            samples = fixed_inputs((16, *shape[1:]), seed=123)
        else:
            samples = load_samples(options.calibration, (None, *shape[1:]), read_metadata(model), max_samples=DEFAULT_MAX_SAMPLES)
        hold = not synthetic and options.eval_data is None and len(samples) >= MIN_HOLDOUT_SOURCE
        out = (np.arange(len(samples)) % HOLDOUT_EVERY == 0) & hold  # every 4th: a folder sorted by class loses a few of each
        held, samples = samples[out], samples[~out]
        say(f"quantizing to INT8 on {len(samples)} {'synthetic' if synthetic else 'calibration'} samples"
            + (f" ({len(held)} more held out to judge it)" if len(held) else ""))
        int8 = quantize_model(model, samples, source=str(options.model))[0]
        if len(held):
            from .diagnostics.sensitivity import cpu_logits
            from .verify import compare

            parity = compare(cpu_logits(int8, held, options.threads), cpu_logits(model, held, options.threads), rtol=1.0)
            heldout = HeldOut(len(held), parity.max_rel_error, parity.top1_agreement)
        if spec is not None:
            int8 = image_input_stage(int8, spec, source=f"{options.model} (INT8)")[0]
        files["int8"] = folder / "int8.onnx"
        write_metadata(int8, {TUNE_MARKER: Path(options.output).name})
        save_onnx(int8, files["int8"])
        for value in (int8.graph.input[0], int8.graph.output[0]):
            value.type.tensor_type.shape.dim[0].Clear()
            value.type.tensor_type.shape.dim[0].dim_value = options.batch_size
        files["int8_static"] = folder / "int8_static.onnx"
        save_onnx(int8, files["int8_static"])
    if "fp16" in precisions and (set(providers) & {"cuda"}):
        files["fp16"] = folder / "fp16.onnx"
        fp16 = convert_fp16(model)[0]
        if spec is not None:
            fp16 = image_input_stage(fp16, spec, source=f"{options.model} (fp16)")[0]
        write_metadata(fp16, {TUNE_MARKER: Path(options.output).name})
        save_onnx(fp16, files["fp16"])
    return files, synthetic, heldout


def _verdict(record: Record, candidate: _Candidate, reference: Record, options: TuneOptions, synthetic: bool,
             heldout: HeldOut | None = None) -> Verdict:
    def verdict(verified: bool, reason: str) -> Verdict:
        return Verdict(record, candidate.engine.backend, candidate.session, verified, reason)

    if record.error:
        return verdict(False, f"failed: {record.error}")
    if record.max_rel_error is None:
        return verdict(False, "no output to compare")
    if record.precision == "int8" and synthetic:
        return verdict(False, "synthetic calibration (pass --calibration)")
    measured = record.accuracy is not None and reference.accuracy is not None
    tf32 = record.precision == "fp32" and record.provider in ("cuda", "tensorrt")
    tolerance = TF32_TOLERANCE if tf32 else TOLERANCES[record.precision]
    if record.precision == "int8" and not measured:
        # INT8 is judged on real inputs, never on the fixed standard-normal one: far from what it
        # was calibrated on, its logit error there says nothing (good calibrations failed, noise passed).
        if heldout is None:
            return verdict(False, "no data to judge INT8 on: pass --eval-data (or 8+ calibration samples)")
        if heldout.max_rel_error > tolerance:
            return verdict(False, f"error {heldout.max_rel_error:.1e} > {tolerance:g} on {heldout.samples} held-out calibration samples")
        return verdict(True, f"verified on {heldout.samples} held-out calibration samples (error {heldout.max_rel_error:.1e}); "
                             "accuracy unmeasured: --eval-data decides" + (" (unstable timing)" if record.unstable else ""))
    if record.max_rel_error > tolerance and record.precision != "int8":
        return verdict(False, f"error {record.max_rel_error:.1e} > {tolerance:g}" + (" (TF32)" if tf32 else ""))
    if measured:
        drop = (reference.accuracy - record.accuracy) * 100  # type: ignore[operator]
        if drop > options.max_accuracy_drop:
            return verdict(False, f"accuracy -{drop:.2f} pt > {options.max_accuracy_drop:g}")
    return verdict(True, "verified" + (" (unstable timing)" if record.unstable else ""))


def tune(options: TuneOptions, *, progress: Callable[[str], None] | None = None,
         on_step: Callable[[str, int, int], None] | None = None) -> TuneResult:
    """Measure every candidate, pick the fastest verified one, write the profile."""
    from .bench.run import run_benchmark

    say = progress or (lambda _msg: None)
    output = Path(options.output)
    check_writable(output)
    if output.resolve() == Path(options.model).resolve():
        raise InputError(f"--output {output} is the model itself")
    orphans = _check_derived_model_path(options, output)
    check_serving_options(options.mode, options.max_p99_ms)
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
    with tempfile.TemporaryDirectory(prefix="resnet-deploy-tune-") as tmp:
        if options.eval_data is not None:  # bad labels are refused before the quantization, not after
            source = load_onnx(options.model)
            eval_arrays(options.eval_data, image_input(source, options.model).batch_shape(1)[1:], read_metadata(source),  # type: ignore[arg-type]
                        Path(tmp), classes=output_classes(source))
        files, synthetic, heldout = _prepare(options, Path(tmp), precisions, providers, say)
        candidates = _candidates(files, providers, precisions, options.batch_size)
        fp32 = read_model_file(files["fp32"])  # (an image-input file: the benchmark photo, uint8)
        plan = Plan(tuple(c.engine for c in candidates), REFERENCE, f"{REFERENCE}: {Path(options.model).name} on the CPU EP",
                    tuple(fp32.shape[1:]), fp32.dtype, metadata=fp32.metadata,  # type: ignore[arg-type]
                    classes=fp32.classes)
        result = run_benchmark(replace(bench, providers=None), progress=progress, on_step=on_step, plan=plan)
        by_name = {r.engine: r for r in result.records}
        reference = by_name[REFERENCE]
        verdicts = [_verdict(by_name[c.engine.name], c, reference, options, synthetic, heldout) for c in candidates]
        eligible = [v for v in verdicts if v.verified and v.record.provider in providers]
        if not eligible:
            raise InputError("no candidate was verified on this machine: " + "; ".join(f"{v.record.engine}: {v.reason}" for v in verdicts))
        winner = min(eligible, key=lambda v: v.record.p50_ms or float("inf"))
        serving = None
        if options.mode == "throughput":  # the most images/s under the p99 bound, over layouts of the cores
            serving = choose_layout([c.engine for c in candidates if c.engine.name in {v.record.engine for v in eligible}],
                                    candidates[0].engine, plan, replace(bench, providers=None),
                                    cores=options.threads or cpu_count(), max_p99_ms=options.max_p99_ms, run=run_benchmark)
            winner = next(v for v in eligible if v.record.engine == serving.best.engine)
        profile = _profile(options, output, winner, verdicts, Path(winner.record.source or files["fp32"]), synthetic, orphans,
                           serving)
    # Synthetic calibration matters only where INT8 was measured (not with --precision fp32, say).
    return TuneResult(verdicts, winner, profile, output, synthetic and "int8" in files, result.environment, heldout, serving)


def derived_model_paths(output: str | Path) -> list[Path]:
    """Where tune may write the winner's model beside the profile: ``<stem>.<engine>.onnx`` for
    every engine that runs a file tune makes (INT8, fp16); fp32 winners run the given file."""
    files = {k: Path(k) for k in ("fp32", "int8", "int8_static", "fp16")}
    made = {c.engine.name for c in _candidates(files, list(PROVIDERS), set(TOLERANCES), 1) if c.engine.artifact != "fp32"}
    output = Path(output)
    return [output.with_name(f"{output.stem}.{name}.onnx") for name in sorted(made)]


def _check_derived_model_path(options: TuneOptions, output: Path) -> set[Path]:
    """The winner is known only after the measurement, so every model file it may write beside
    the profile is checked before it: each name must be writable (the longest engine name makes
    the longest), none may be an input, and none may exist without force, unless it is the orphan
    of an interrupted run for this profile. Returns those orphans."""
    paths = derived_model_paths(output)
    for path in paths:
        try:
            check_writable(path)
        except OutputPathError as exc:
            raise OutputPathError(f"the model tune may write beside --output {output.name[:40]}: {exc}; shorten --output") from None
    derived = {"the profile's model": paths}
    check_distinct(derived, {"MODEL": model_files(options.model), "--calibration": options.calibration,
                             "--eval-data": options.eval_data})
    orphans = {p for p in paths if _is_orphan(p, output)}
    check_new({"the profile's model": [p for p in paths if p not in orphans]}, force=options.force)
    return orphans


def _is_orphan(path: Path, output: Path) -> bool:
    """A model file tune made for ``output``, left without its profile (the run was killed)."""
    if output.exists() or not path.is_file():
        return False
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # anything unreadable is not ours to replace
        return False
    return any(p.key == TUNE_MARKER and p.value == output.name for p in model.metadata_props)


def _profile(options: TuneOptions, output: Path, winner: Verdict, verdicts: list[Verdict], model_file: Path,
             synthetic: bool, orphans: set[Path], serving: ServingChoice | None = None) -> DeploymentProfile:
    """Save the winner's model beside the profile (unless it is the given file) and the profile."""
    source = Path(options.model).resolve()
    if model_file.resolve() == source:
        model_ref = str(source)
    else:
        target = output.with_name(f"{output.stem}.{winner.record.engine}.onnx")
        atomic_write_bytes(target, model_file.read_bytes(), replace=options.force or target in orphans)
        model_ref = target.name
    r = winner.record
    session = {**winner.session, "threads": serving.best.threads if serving else options.threads or r.threads}
    profile = DeploymentProfile(
        model=model_ref,
        model_sha256=model_sha256(model_file),  # with its external data
        provider=r.provider,
        backend="openvino-runtime" if winner.backend == "openvino" else "onnxruntime",
        precision=r.precision,
        batch_size=r.batch_size,
        session=session,
        measured={"p50_ms": r.p50_ms, "p99_ms": r.p99_ms, "images_per_s": r.images_per_s, "speedup_vs_reference": r.speedup_vs_baseline,
                  "max_rel_error": r.max_rel_error, "accuracy": r.accuracy, "synthetic_calibration": synthetic and r.precision == "int8",
                  "candidate": r.engine},
        machine=machine(),
        source_model=str(source),
        candidates=[{"engine": v.record.engine, "provider": v.record.provider, "precision": v.record.precision,
                     "p50_ms": v.record.p50_ms, "max_rel_error": v.record.max_rel_error, "accuracy": v.record.accuracy,
                     "verified": v.verified, "reason": v.reason} for v in verdicts],
        created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        toolkit_version=__version__,
        serving=serving.to_profile() if serving else {},
    )
    save_profile(profile, output, replace=options.force)
    for orphan in orphans - {output.with_name(f"{output.stem}.{winner.record.engine}.onnx")}:
        orphan.unlink(missing_ok=True)  # an interrupted run's model that this profile does not use
    return profile
