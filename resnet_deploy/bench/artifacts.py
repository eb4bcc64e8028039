"""The ONNX files the zoo's engines run: exported, optimized and quantized once, then cached
under ``~/.cache/resnet-deploy/bench`` keyed by model, weights, calibration and toolkit version.

This is the half of the benchmark that needs torch; it runs in the parent only.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable, Iterable

import torch

from .. import __version__
from .._hashing import file_sha256
from .._registry import get_model_spec
from ..export.exporter import ExportOptions, export_model
from ..models import create_model
from ..graph.io import load_onnx, save_onnx
from ..export.optimize import optimize_model
from ..export.torch_export import torch_export
from ..graph.verify import fixed_inputs
from .cache import make_cache_entry
from .model_files import ARTIFACTS, calibration_samples, fp16_model, int8_model, with_static_batch
from .options import BenchOptions
from .schema import Engine

__all__ = ["prepare_artifacts", "artifact_path", "count_model_macs", "measure_peak_gflops"]


def _file_digest(path: str | Path | None) -> str | None:
    return None if path is None else file_sha256(path)


def _cache_key(options: BenchOptions) -> str:
    calib = options.calibration
    key = {
        "model": options.model,
        "weights": _file_digest(options.weights),
        "calibration": (str(Path(calib).resolve()), Path(calib).stat().st_mtime_ns) if calib else "synthetic",
        "toolkit": __version__,
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def artifact_path(paths: dict[str, Path], engine: Engine, batch: int) -> Path | None:
    """The file an engine runs at a batch size (the static-batch INT8 file is one per batch)."""
    if engine.artifact is None:
        return None
    return paths[f"int8_static_b{batch}" if engine.artifact == "int8_static" else engine.artifact]


def prepare_artifacts(
    options: BenchOptions, engines: Iterable[Engine], say: Callable[[str], None]
) -> dict[str, Path]:
    """Export what the engines need into the cache; return artifact name -> path."""
    needed = {e.artifact for e in engines if e.artifact}
    if not needed:
        return {}
    key = _cache_key(options)
    folder = make_cache_entry(options.cache_folder() / f"{options.model}-{key}", key)
    paths = {name: folder / f"{name}.onnx" for name in ARTIFACTS if name != "int8_static"}
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
        save_onnx(torch_export(model, x, dynamic=True), paths["export"])
    for target in ("cpu", "cuda"):
        if target in needed and not paths[target].exists():
            say(f"optimizing for {target}")
            save_onnx(optimize_model(portable, target, source=str(paths["portable"])).model, paths[target])
    if "fp16" in needed and not paths["fp16"].exists():
        save_onnx(fp16_model(portable), paths["fp16"])
    if {"int8", "int8_static"} & needed:
        if not paths["int8"].exists():
            size = get_model_spec(options.model).image_size
            samples = calibration_samples(portable, options.calibration, (3, size, size))
            say(f"quantizing to INT8 on {len(samples)} "
                f"{'synthetic' if options.calibration is None else 'calibration'} samples")
            save_onnx(int8_model(portable, samples, source=options.model), paths["int8"])
        if "int8_static" in needed:
            for b in options.batch_sizes:
                if not paths[f"int8_static_b{b}"].exists():
                    save_onnx(with_static_batch(load_onnx(paths["int8"]), b), paths[f"int8_static_b{b}"])
    return paths


def count_model_macs(architecture: str, num_classes: int | None, image_size: int) -> int:
    """Multiply-accumulates of one image (for GFLOP/s)."""
    from ..models import count_macs

    return count_macs(create_model(architecture, num_classes=num_classes), image_size)


def measure_peak_gflops(threads: int, n: int = 4096) -> float:
    """fp32 GEMM throughput of this machine through PyTorch, in a fresh process."""
    import subprocess
    import sys

    code = (
        "import torch, time; torch.set_num_threads(%d); a=torch.randn(%d,%d); b=torch.randn(%d,%d)\n"
        "for _ in range(2): a@b\n"
        "t=[]\n"
        "for _ in range(5):\n s=time.perf_counter(); a@b; t.append(time.perf_counter()-s)\n"
        "print(2*%d**3/min(t)/1e9)" % (threads, n, n, n, n, n)
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    return float(out.stdout.strip().splitlines()[-1])
