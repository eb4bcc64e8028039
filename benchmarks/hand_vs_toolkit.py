"""Is the toolkit's tuned path at least as fast as the best hand configuration of this machine?

    python benchmarks/hand_vs_toolkit.py [--depth 50] [--threads 2] [--seconds 3] [--rounds 7] [--target-cpu any]

ResNet-50 (seeded random init) is exported, then:

* ``tune`` picks this machine's fastest verified configuration and writes a profile, with INT8
  made for ``--target-cpu`` (``auto``: this machine's class; ``any``: 7-bit weights, every CPU)
  (calibration: 16 standard-normal inputs, so INT8 is verified by logit error only);
* what an engineer would write by hand on the same INT8 QDQ file: the OpenVINO runtime with a
  static [1, 3, 224, 224] shape and the LATENCY hint, and an onnxruntime CPU session with every
  graph optimization; plus onnxruntime on the fp32 file;
* the toolkit's ``Predictor.from_profile(profile).run(x)``, the call a user embeds.

All of them run in one process, interleaved round by round (A B C D, B C D A, ...), each round
a warm-up then ``--seconds`` of back-to-back batch-1 calls; the table gives the median of the
round medians, the min-max of the per-round medians, and the toolkit's ratio to each hand
configuration per round. Parity of every path against the fp32 file on onnxruntime is printed.
Run it on an otherwise idle machine (2 cores: about 3 minutes with the defaults).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from resnet_deploy import Predictor  # noqa: E402
from resnet_deploy._machine import cpu_flags, cpu_model  # noqa: E402
from resnet_deploy.export.exporter import ExportOptions, export_model  # noqa: E402
from resnet_deploy.graph.io import load_onnx, save_onnx  # noqa: E402
from resnet_deploy.precision.quantize import quantize_model  # noqa: E402
from resnet_deploy.tune import TuneOptions, tune  # noqa: E402


def hand_openvino(path: Path, x: np.ndarray, threads: int) -> Callable[[], np.ndarray]:
    import openvino as ov

    core = ov.Core()
    model = core.read_model(str(path))
    model.reshape({model.inputs[0].any_name: list(x.shape)})
    compiled = core.compile_model(model, "CPU", {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads})
    request = compiled.create_infer_request()
    return lambda: request.infer({0: x})[compiled.outputs[0]]


def hand_onnxruntime(path: Path, x: np.ndarray, threads: int) -> Callable[[], np.ndarray]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda: session.run(None, {name: x})[0]


def timed_round(fn: Callable[[], np.ndarray], seconds: float) -> float:
    for _ in range(5):
        fn()
    times = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--depth", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    parser.add_argument("--target-cpu", default="auto", choices=("auto", "vnni", "any"),
                        help="the INT8 recipe's CPU class")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="hand-vs-toolkit-") as tmp:
        folder = Path(tmp)
        fp32, int8, calib, profile = (folder / n
                                      for n in ("model.onnx", "model_int8.onnx", "calib.npy", "model.profile.json"))
        export_model(ExportOptions(f"resnet{args.depth}"), fp32)
        samples = rng.standard_normal((16, 3, 224, 224)).astype(np.float32)
        np.save(calib, samples)
        # the default recipe, as tune's INT8 candidates
        made = quantize_model(load_onnx(fp32), samples, target_cpu=args.target_cpu)
        save_onnx(made.model, int8)
        print("tuning ...", file=sys.stderr)
        tuned = tune(TuneOptions(model=fp32, output=profile, threads=args.threads, calibration=calib, duration=3.0,
                                 rounds=3, target_cpu=args.target_cpu))
        print(f"tune chose {tuned.winner.record.engine} ({tuned.winner.record.p50_ms:.2f} ms in its own run)",
              file=sys.stderr)
        x = rng.standard_normal((1, 3, 224, 224)).astype(np.float32)
        predictor = Predictor.from_profile(profile)
        paths: dict[str, Callable[[], np.ndarray]] = {
            f"toolkit: Predictor.from_profile ({tuned.winner.record.engine})": lambda: predictor.run(x),
            "by hand: OpenVINO, INT8 QDQ, static shape, LATENCY": hand_openvino(int8, x, args.threads),
            "by hand: onnxruntime CPU, INT8 QDQ, ORT_ENABLE_ALL": hand_onnxruntime(int8, x, args.threads),
            "by hand: onnxruntime CPU, fp32": hand_onnxruntime(fp32, x, args.threads),
        }
        reference = paths["by hand: onnxruntime CPU, fp32"]()
        errors = {name: float(np.abs(fn() - reference).max() / np.abs(reference).max()) for name, fn in paths.items()}
        names = list(paths)
        medians: dict[str, list[float]] = {n: [] for n in names}
        for r in range(args.rounds):
            for name in names[r % len(names):] + names[: r % len(names)]:
                medians[name].append(timed_round(paths[name], args.seconds))
    toolkit = names[0]
    flags = cpu_flags()
    isa = [f for f in ("avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8") if f in flags]
    print(f"ResNet-{args.depth}, batch 1, {args.threads} threads, {args.rounds} interleaved rounds of "
          f"{args.seconds:g} s; INT8 int8_kernels {made.int8_kernels}; {cpu_model()} ({', '.join(isa)}), "
          f"Python {platform.python_version()}")
    print(f"{'path':<62} {'p50 ms':>7} {'range':>13} {'toolkit speed':>14} {'rel err':>8}")
    rows = []
    for name in names:
        ratios = [t / k for t, k in zip(medians[name], medians[toolkit])]
        p50 = statistics.median(medians[name])
        ratio = "" if name == toolkit else f"{min(ratios):.2f}-{max(ratios):.2f}x"
        print(f"{name:<62} {p50:>7.2f} {min(medians[name]):>6.2f}-{max(medians[name]):<6.2f} {ratio:>14} "
              f"{errors[name]:>8.1e}")
        rows.append({"path": name, "p50_ms": p50, "round_medians_ms": medians[name], "toolkit_speed_per_round": ratios,
                     "max_rel_error_vs_fp32": errors[name]})
    print("toolkit speed = the path's round median / the toolkit's round median, min-max over rounds "
          "(> 1: toolkit faster)")
    if args.json:
        args.json.write_text(json.dumps({"cpu": cpu_model(), "isa": isa, "threads": args.threads,
                                         "int8_kernels": made.int8_kernels, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
