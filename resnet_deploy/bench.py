"""The benchmark: eager PyTorch against every ONNX Runtime path, side by side, in one run.

Every (engine, batch size) is measured in a fresh subprocess (:mod:`resnet_deploy.bench_worker`)
on the same fixed input: warm-up first, then ``time.perf_counter`` around each synchronous run
(GPU work is synchronised before each timestamp). Records are flat and carry medians, tails,
throughput, speed-up against eager fp32 at the same batch size, start-up costs, peak memory,
the numerical error against eager fp32 and, with evaluation data, accuracy.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch

from . import __version__
from ._atomic import atomic_write_bytes, check_writable
from ._errors import InputError, ProviderUnavailableError, ResnetDeployError
from ._registry import get_model_spec
from .calibration import check_samples, load_samples
from .environment import cpu_flags, environment
from .export import DEFAULT_OPSET, ExportOptions, _torch_export, export_model
from .models import count_macs, create_model
from .onnx_io import load_onnx, read_metadata, save_onnx
from .optimize import optimize_model
from .quantize import convert_fp16, quantize_model
from .runtime import PROVIDERS, available_providers, cpu_count
from .verify import compare, fixed_inputs

__all__ = ["Engine", "BenchOptions", "BenchResult", "plan_engines", "run_benchmark", "PRECISIONS", "to_csv", "to_markdown", "plot"]

PRECISIONS = ("fp32", "bf16", "fp16", "int8")
RECORD_FIELDS = (
    "engine", "provider", "precision", "batch_size", "p50_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms",
    "images_per_s", "speedup_vs_eager", "session_create_ms", "first_run_ms", "peak_rss_mb", "max_rel_error",
    "gflops", "peak_fraction", "accuracy", "iterations", "synthetic_calibration", "description", "error",
    "worker_pid",
)


@dataclass(frozen=True)
class Engine:
    name: str
    framework: str  # "pytorch" or "onnxruntime"
    provider: str  # "cpu", "cuda", "tensorrt", "openvino"
    precision: str
    variant: str
    artifact: str | None = None  # which ONNX file (see _ARTIFACTS)
    optimization: str = "all"
    description: str = ""


@dataclass
class BenchOptions:
    model: str = "resnet50"
    weights: str | Path | None = None
    batch_sizes: Sequence[int] = (1,)
    providers: Sequence[str] | None = None  # None: every available provider
    precisions: Sequence[str] | None = None  # None: every precision
    threads: int | None = None
    duration: float | None = 3.0
    iterations: int | None = None
    warmup: int = 5
    min_iterations: int = 10
    compile: bool = False
    peak: bool = False
    eval_data: str | Path | None = None
    calibration: str | Path | None = None
    cache_dir: str | Path | None = None
    engines: Sequence[str] | None = None  # restrict to these engine names


@dataclass
class BenchResult:
    records: list[dict[str, Any]]
    environment: dict[str, Any]
    options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"results": self.records, "environment": self.environment, "options": self.options}


def validate(options: BenchOptions) -> None:
    if not options.batch_sizes:
        raise InputError("no batch size given")
    for b in options.batch_sizes:
        if b < 1:
            raise InputError(f"batch sizes must be at least 1, received {b}")
    for p in options.providers or ():
        if p not in PROVIDERS:
            raise ProviderUnavailableError(f"unknown provider {p!r}; expected one of {', '.join(PROVIDERS)}")
        if p not in available_providers():
            raise ProviderUnavailableError(f"provider {p!r} is not available on this machine; available: {', '.join(available_providers())}")
    for p in options.precisions or ():
        if p not in PRECISIONS:
            raise InputError(f"unknown precision {p!r}; expected one of {', '.join(PRECISIONS)}")
    if options.threads is not None and options.threads < 1:
        raise InputError(f"threads must be at least 1, received {options.threads}")
    if options.duration is not None and options.duration <= 0:
        raise InputError(f"duration must be positive, received {options.duration}")
    if options.iterations is not None and options.iterations < 1:
        raise InputError(f"iterations must be at least 1, received {options.iterations}")
    get_model_spec(options.model)


def _torch_cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:
        return False


def plan_engines(options: BenchOptions) -> list[Engine]:
    """The engines this machine can run, filtered by the options. Eager fp32 on the CPU is the baseline."""
    providers = set(options.providers or available_providers())
    precisions = set(options.precisions or PRECISIONS)
    flags = cpu_flags()
    plan = [
        Engine("pytorch-eager", "pytorch", "cpu", "fp32", "eager", description="torch eager, NCHW (the baseline)"),
        Engine("pytorch-channels-last", "pytorch", "cpu", "fp32", "channels_last", description="torch eager, channels_last"),
    ]
    if {"avx512_bf16", "amx_bf16"} & flags:
        plan.append(Engine("pytorch-bf16", "pytorch", "cpu", "bf16", "bf16", description="torch eager, bf16 autocast, channels_last"))
    if options.compile:
        plan.append(Engine("pytorch-compile", "pytorch", "cpu", "fp32", "compile", description="torch.compile (inductor), channels_last"))
    plan += [
        Engine("ort-export", "onnxruntime", "cpu", "fp32", "export", "export", "basic", "the raw torch.onnx export, ORT basic optimizations"),
        Engine("ort-fused", "onnxruntime", "cpu", "fp32", "fused", "cpu", "basic", "simplified + our fusions (FusedConv), ORT basic optimizations"),
        Engine("ort-full", "onnxruntime", "cpu", "fp32", "full", "cpu", "all", "simplified + our fusions, ORT full optimizations"),
        Engine("ort-int8", "onnxruntime", "cpu", "int8", "int8", "int8", "all", "static INT8 QDQ (U8S8, per-channel), ORT full optimizations"),
    ]
    if "openvino" in providers:
        plan += [
            Engine("openvino", "onnxruntime", "openvino", "fp32", "openvino", "portable", description="OpenVINO EP, fp32 file"),
            Engine("openvino-bf16", "onnxruntime", "openvino", "bf16", "openvino", "portable", description="OpenVINO EP, BF16 inference precision hint"),
            Engine("openvino-int8", "onnxruntime", "openvino", "int8", "openvino", "int8", description="OpenVINO EP, INT8 QDQ file"),
            Engine("openvino-int8-static", "onnxruntime", "openvino", "int8", "openvino", "int8_static", description="OpenVINO EP, INT8 QDQ file with a static batch"),
        ]
    if "cuda" in providers:
        if _torch_cuda():
            plan += [
                Engine("pytorch-cuda", "pytorch", "cuda", "fp32", "eager", description="torch eager on the GPU"),
                Engine("pytorch-cuda-fp16", "pytorch", "cuda", "fp16", "channels_last", description="torch eager on the GPU, fp16 autocast, channels_last"),
            ]
        plan += [
            Engine("ort-cuda", "onnxruntime", "cuda", "fp32", "cuda", "cuda", description="CUDA EP, FusedConv, IO binding, EXHAUSTIVE conv search"),
            Engine("ort-cuda-fp16", "onnxruntime", "cuda", "fp16", "cuda", "fp16", description="CUDA EP, fp16 file, IO binding"),
        ]
    if "tensorrt" in providers:
        plan += [
            Engine("tensorrt", "onnxruntime", "tensorrt", "fp32", "tensorrt", "portable", description="TensorRT EP, engine cache"),
            Engine("tensorrt-fp16", "onnxruntime", "tensorrt", "fp16", "tensorrt", "portable", description="TensorRT EP, fp16, engine cache"),
        ]
    keep = [e for e in plan if e.name == "pytorch-eager" or (e.provider in providers | {"cpu"} and e.precision in precisions)]
    if options.providers:  # CPU engines only when asked for (the eager baseline always runs)
        keep = [e for e in keep if e.name == "pytorch-eager" or e.provider in providers]
    if options.engines:
        unknown = set(options.engines) - {e.name for e in plan}
        if unknown:
            raise InputError(f"unknown engine {sorted(unknown)[0]!r}; engines here: {', '.join(e.name for e in plan)}")
        keep = [e for e in keep if e.name == "pytorch-eager" or e.name in options.engines]
    return keep


# -- artifacts: exported once per (model, weights, options) and cached ------------------------------

def _file_digest(path: str | Path | None) -> str | None:
    if path is None:
        return None
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _cache_root(options: BenchOptions) -> Path:
    if options.cache_dir:
        return Path(options.cache_dir)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "resnet-deploy" / "bench"


def _cache_key(options: BenchOptions) -> str:
    calib = options.calibration
    key = {
        "model": options.model,
        "weights": _file_digest(options.weights),
        "calibration": (str(Path(calib).resolve()), Path(calib).stat().st_mtime_ns) if calib else "synthetic",
        "toolkit": __version__,
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def prepare_artifacts(
    options: BenchOptions, engines: Iterable[Engine], say: Callable[[str], None]
) -> dict[str, Path]:
    """Export what the engines need into the cache; return artifact name -> path."""
    needed = {e.artifact for e in engines if e.artifact}
    if not needed:
        return {}
    folder = _cache_root(options) / f"{options.model}-{_cache_key(options)}"
    folder.mkdir(parents=True, exist_ok=True)
    paths = {name: folder / f"{name}.onnx" for name in ("export", "portable", "cpu", "cuda", "int8", "fp16")}
    for b in options.batch_sizes:
        paths[f"int8_static_b{b}"] = folder / f"int8_static_b{b}.onnx"

    if not paths["portable"].exists():
        say(f"exporting {options.model} (cached in {folder})")
        export_model(ExportOptions(options.model, weights=options.weights), paths["portable"])
    portable = load_onnx(paths["portable"])
    if "export" in needed and not paths["export"].exists():
        spec = get_model_spec(options.model)
        model = create_model(options.model, weights=options.weights)
        x = torch.from_numpy(fixed_inputs((2, 3, spec.image_size, spec.image_size)))
        save_onnx(_torch_export(model, x, DEFAULT_OPSET, dynamic=True), paths["export"])
    for target in ("cpu", "cuda"):
        if target in needed and not paths[target].exists():
            say(f"optimizing for {target}")
            optimized, *_ = optimize_model(portable, target, source=str(paths["portable"]))
            save_onnx(optimized, paths[target])
    if "fp16" in needed and not paths["fp16"].exists():
        save_onnx(convert_fp16(portable)[0], paths["fp16"])
    if {"int8", "int8_static"} & needed:
        if not paths["int8"].exists():
            samples = _calibration_samples(options, portable)
            say(f"quantizing to INT8 on {len(samples)} {'synthetic' if options.calibration is None else 'calibration'} samples")
            save_onnx(quantize_model(portable, samples, source=options.model)[0], paths["int8"])
        if "int8_static" in needed:
            for b in options.batch_sizes:
                if not paths[f"int8_static_b{b}"].exists():
                    save_onnx(_with_static_batch(load_onnx(paths["int8"]), b), paths[f"int8_static_b{b}"])
    return paths


def _calibration_samples(options: BenchOptions, portable: Any) -> np.ndarray:
    spec = get_model_spec(options.model)
    shape = (None, 3, spec.image_size, spec.image_size)
    if options.calibration is not None:
        return load_samples(options.calibration, shape, read_metadata(portable))
    # Timing only: records that use it are labelled synthetic_calibration.
    return fixed_inputs((16, 3, spec.image_size, spec.image_size), seed=123)


def _with_static_batch(model: Any, batch: int) -> Any:
    import onnx

    static = onnx.ModelProto()
    static.CopyFrom(model)
    for value in (static.graph.input[0], static.graph.output[0]):
        value.type.tensor_type.shape.dim[0].Clear()
        value.type.tensor_type.shape.dim[0].dim_value = batch
    return static


# -- running ----------------------------------------------------------------------------------------

def _run_worker(spec: dict[str, Any], workdir: Path, timeout: float) -> dict[str, Any]:
    spec_path = workdir / "spec.json"
    spec_path.write_text(json.dumps(spec))
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "resnet_deploy.bench_worker", str(spec_path)],
            capture_output=True, text=True, timeout=timeout, env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f}s"}
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    tail = (proc.stderr or proc.stdout).strip().splitlines()
    return {"error": f"worker exited with {proc.returncode}: {tail[-1][:300] if tail else 'no output'}"}


def _summarise(latencies: list[float]) -> dict[str, float]:
    arr = np.asarray(latencies)
    return {
        "p50_ms": float(np.percentile(arr, 50)),
        "p90_ms": float(np.percentile(arr, 90)),
        "p99_ms": float(np.percentile(arr, 99)),
        "mean_ms": float(arr.mean()),
        "std_ms": float(arr.std()),
        "iterations": int(arr.size),
    }


def measure_peak_gflops(threads: int, n: int = 4096) -> float:
    """fp32 GEMM throughput of this machine through PyTorch, in a fresh process."""
    code = (
        "import torch, time; torch.set_num_threads(%d); a=torch.randn(%d,%d); b=torch.randn(%d,%d)\n"
        "for _ in range(2): a@b\n"
        "t=[]\n"
        "for _ in range(5):\n s=time.perf_counter(); a@b; t.append(time.perf_counter()-s)\n"
        "print(2*%d**3/min(t)/1e9)" % (threads, n, n, n, n, n)
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    return float(out.stdout.strip().splitlines()[-1])


def run_benchmark(
    options: BenchOptions,
    *,
    progress: Callable[[str], None] | None = None,
    on_step: Callable[[str, int, int], None] | None = None,
) -> BenchResult:
    """Measure every planned engine at every batch size; one subprocess each."""
    say = progress or (lambda _msg: None)
    validate(options)
    spec = get_model_spec(options.model)
    threads = options.threads or cpu_count()
    engines = plan_engines(options)
    with tempfile.TemporaryDirectory(prefix="resnet-deploy-bench-") as tmp:
        workdir = Path(tmp)
        eval_paths = _eval_arrays(options, spec, workdir) if options.eval_data else None  # refused early
        artifacts = prepare_artifacts(options, engines, say)
        macs = count_macs(create_model(options.model), spec.image_size)
        peak = measure_peak_gflops(threads) if options.peak else None
        env = environment(threads)
        env["peak_gflops"] = peak
        records: list[dict[str, Any]] = []
        total = len(engines) * len(options.batch_sizes)
        step = 0
        for batch in options.batch_sizes:
            x = fixed_inputs((batch, 3, spec.image_size, spec.image_size), seed=42)
            input_path = workdir / f"input_b{batch}.npy"
            np.save(input_path, x)
            baselines: dict[str, tuple[float, np.ndarray]] = {}  # engine name -> (p50, output)
            for engine in engines:
                step += 1
                if on_step:
                    on_step(f"{engine.name} batch {batch}", step, total)
                artifact = engine.artifact
                if artifact == "int8_static":
                    artifact = f"int8_static_b{batch}"
                worker_spec = {
                    **asdict(engine),
                    "model": options.model,
                    "weights": str(options.weights) if options.weights else None,
                    "model_path": str(artifacts[artifact]) if artifact else None,
                    "batch_size": batch,
                    "threads": threads,
                    "duration": options.duration if options.iterations is None else None,
                    "iterations": options.iterations,
                    "min_iterations": options.min_iterations,
                    "warmup": options.warmup,
                    "input_path": str(input_path),
                    "output_path": str(workdir / f"out_{engine.name}_b{batch}.npy"),
                    "trt_cache_dir": str(_cache_root(options) / "tensorrt"),
                    **(eval_paths or {}),
                }
                raw = _run_worker(worker_spec, workdir, timeout=900)
                record = _record(engine, batch, raw, macs, peak, options)
                if "error" not in raw:
                    _against_baselines(record, np.load(worker_spec["output_path"]), baselines)
                records.append(record)
    return BenchResult(records, env, {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(options).items()})


def _against_baselines(record: dict[str, Any], out: np.ndarray, baselines: dict[str, tuple[float, np.ndarray]]) -> None:
    """Error against eager fp32 on the CPU; speed against eager fp32 at the same batch size, on
    the GPU for GPU engines once eager CUDA has been measured (eager CUDA itself against the CPU)."""
    engine = record["engine"]
    if engine in ("pytorch-eager", "pytorch-cuda"):
        baselines[engine] = (record["p50_ms"], out)
    if "pytorch-eager" in baselines:
        record["max_rel_error"] = compare(out, baselines["pytorch-eager"][1], rtol=1.0).max_rel_error
    on_gpu = record["provider"] in ("cuda", "tensorrt") and engine != "pytorch-cuda"
    reference = "pytorch-cuda" if on_gpu and "pytorch-cuda" in baselines else "pytorch-eager"
    if reference in baselines:
        record["speedup_vs_eager"] = baselines[reference][0] / record["p50_ms"]
        record["baseline"] = reference


def _record(engine: Engine, batch: int, raw: dict[str, Any], macs: int, peak: float | None, options: BenchOptions) -> dict[str, Any]:
    record: dict[str, Any] = {f: None for f in RECORD_FIELDS}
    record.update(engine=engine.name, provider=engine.provider, precision=engine.precision, batch_size=batch, description=engine.description)
    record["synthetic_calibration"] = engine.precision == "int8" and options.calibration is None
    if "error" in raw:
        record["error"] = raw["error"]
        return record
    record.update(_summarise(raw["latencies_ms"]))
    record["images_per_s"] = batch * 1000.0 / record["p50_ms"]
    record["gflops"] = 2.0 * macs * batch / (record["p50_ms"] / 1000.0) / 1e9
    record["peak_fraction"] = record["gflops"] / peak if peak else None
    for key in ("session_create_ms", "first_run_ms", "peak_rss_mb", "accuracy", "worker_pid"):
        record[key] = raw.get(key)
    return record


def _eval_arrays(options: BenchOptions, spec: Any, folder: Path) -> dict[str, str]:
    """Evaluation data as two .npy files (preprocessed inputs and integer labels)."""
    source = Path(options.eval_data)  # type: ignore[arg-type]
    shape = (None, 3, spec.image_size, spec.image_size)
    if source.suffix == ".npz" and source.is_file():
        try:
            with np.load(source, allow_pickle=False) as data:
                x, y = data["x"], data["y"]
        except (KeyError, ValueError, OSError) as exc:
            raise InputError(f"{source} must be an .npz with arrays 'x' (float32 [N, 3, H, W]) and 'y' (labels)") from exc
        x = check_samples(x, shape, source)
    elif source.is_dir():
        classes = sorted(p for p in source.iterdir() if p.is_dir())
        if not classes or not all(p.name.isdigit() for p in classes):
            raise InputError(f"{source} needs one subfolder of images per class, named by the class index")
        preprocessing = {"mean": spec.mean, "std": spec.std, "resize_size": spec.resize_size, "crop_size": spec.image_size}
        batches = [load_samples(folder, shape, preprocessing, max_samples=None) for folder in classes]
        x = np.concatenate(batches)
        y = np.concatenate([np.full(len(b), int(folder.name)) for b, folder in zip(batches, classes)])
    else:
        raise InputError(f"evaluation data must be an .npz file or a folder of class subfolders: {source}")
    y = np.asarray(y).astype(np.int64).reshape(-1)
    if len(y) != len(x):
        raise InputError(f"{source}: {len(x)} inputs but {len(y)} labels")
    np.save(folder / "eval_x.npy", x)
    np.save(folder / "eval_y.npy", y)
    return {"eval_x_path": str(folder / "eval_x.npy"), "eval_y_path": str(folder / "eval_y.npy")}


# -- reports ----------------------------------------------------------------------------------------

def to_csv(records: Sequence[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=[*RECORD_FIELDS, "baseline"], extrasaction="ignore")
    writer.writeheader()
    for r in records:
        writer.writerow(r)
    return buf.getvalue()


def to_markdown(result: BenchResult) -> str:
    env = result.environment
    isa = ", ".join(k for k, v in env["isa"].items() if v) or "none"
    lines = [
        f"Model {result.options.get('model')}, {env['cpu']}, {env['cores']} cores, {env['threads']} threads, ISA: {isa}"
        + (f", GPU: {env['gpu']}" if env.get("gpu") else ""),
        "",
        "| engine | provider | precision | batch | p50 ms | p90 ms | images/s | speed-up vs eager | max rel error | accuracy |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result.records:
        if r.get("error"):
            lines.append(f"| {r['engine']} | {r['provider']} | {r['precision']} | {r['batch_size']} | failed: {r['error']} | | | | | |")
            continue
        acc = f"{r['accuracy']:.2%}" if r.get("accuracy") is not None else ""
        err = f"{r['max_rel_error']:.1e}" if r.get("max_rel_error") is not None else ""
        spd = f"{r['speedup_vs_eager']:.2f}x" if r.get("speedup_vs_eager") else ""
        tag = " (synthetic calibration)" if r.get("synthetic_calibration") else ""
        lines.append(
            f"| {r['engine']}{tag} | {r['provider']} | {r['precision']} | {r['batch_size']} | {r['p50_ms']:.2f} | "
            f"{r['p90_ms']:.2f} | {r['images_per_s']:.1f} | {spd} | {err} | {acc} |"
        )
    return "\n".join(lines) + "\n"


def plot(result: BenchResult, path: str | Path) -> None:
    """Latency and throughput against batch size, one line per engine (matplotlib, PNG)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ResnetDeployError("--plot needs matplotlib: pip install 'resnet-deploy[plot]'") from exc
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    names = sorted({r["engine"] for r in result.records if not r.get("error")})
    for name in names:
        rows = sorted((r for r in result.records if r["engine"] == name and not r.get("error")), key=lambda r: r["batch_size"])
        b = [r["batch_size"] for r in rows]
        ax1.plot(b, [r["p50_ms"] for r in rows], marker="o", label=name)
        ax2.plot(b, [r["images_per_s"] for r in rows], marker="o", label=name)
    for ax, label in ((ax1, "p50 latency (ms)"), (ax2, "throughput (images/s)")):
        ax.set_xlabel("batch size")
        ax.set_ylabel(label)
        ax.set_xscale("log", base=2)
        ax.grid(True, alpha=0.3)
    ax1.set_yscale("log")
    ax2.legend(fontsize=8)
    fig.suptitle(f"{result.options.get('model')} on {result.environment['cpu']} ({result.environment['threads']} threads)")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def check_outputs(*paths: str | Path | None) -> None:
    for p in paths:
        if p is not None:
            check_writable(p)
