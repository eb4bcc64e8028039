"""What accuracy-aware INT8's float blocks cost in speed, timed by the benchmark.

The benchmark's own method (one worker per engine, interleaved rounds, medians) on three files:
fp32, every block INT8, and the chosen model; onnxruntime's CPU provider at batch 1 (or the
model's fixed batch), no eager baseline.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import onnx

from .._owned import owned_tempdir
from ..graph.io import image_input, save_onnx
from ..precision.accuracy_aware import SpeedCost

__all__ = ["speed_cost"]


def speed_cost(fp32_path: Path, full: onnx.ModelProto, chosen: onnx.ModelProto,
               threads: int | None) -> SpeedCost | None:
    """p50 latencies of the three. None when an engine failed: no cost is better than a made-up one."""
    from ..bench import BenchOptions, run_benchmark  # (the benchmark loads on first use, as the package's names do)
    from ..bench.plan import plan_files

    with owned_tempdir("resnet-deploy-cost-") as tmp:
        paths = (fp32_path, Path(tmp, "int8_all_blocks.onnx"), Path(tmp, "int8_accuracy_aware.onnx"))
        save_onnx(full, paths[1])
        save_onnx(chosen, paths[2])
        batch = image_input(chosen).shape[0] or 1
        options = BenchOptions(files=paths, providers=["cpu"], batch_sizes=(batch,), threads=threads,
                               duration=1.0, rounds=5)
        plan = plan_files(options, ["cpu"])
        onnx_engines = tuple(e for e in plan.engines if e.backend == "onnxruntime")
        # architecture None: no eager engine, so no torch import and no MAC count in the run.
        plan = replace(plan, engines=onnx_engines, baseline=onnx_engines[0].name,
                       baseline_note="the fp32 file", architecture=None)
        records = {r.engine: r for r in run_benchmark(options, plan=plan).records}
    fp32, full_r, chosen_r = runs = [records[e.name] for e in onnx_engines]
    if any(r.error or not r.p50_ms for r in runs):
        return None
    return SpeedCost(fp32.p50_ms, full_r.p50_ms, chosen_r.p50_ms, batch,  # type: ignore[arg-type]
                     fp32.threads or 0, fp32.rounds or 0, any(r.unstable for r in runs))
