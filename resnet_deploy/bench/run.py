"""Orchestration: plan -> artifacts -> one persistent worker per engine -> interleaved rounds -> records.

For each batch size (and concurrency level) every engine gets its own worker process, started
one after another (so start-ups never overlap). The parent then interleaves rounds, A B C A B C
..., each worker timing ``duration / rounds`` seconds (or ``iterations / rounds`` runs) per round
while the others wait idle. Load that comes and goes hits every engine alike, and the per-round
ratios against the baseline show how much the machine moved under the measurement. One such
group is measured by :mod:`.groups`.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

from .._errors import InputError
from .._owned import owned_tempdir
from ..runtime.environment import environment
from ..runtime import cpu_count
from ..precision.calibration import eval_arrays
from .options import BenchOptions, validate
from .plan import Plan, plan_files, plan_zoo
from .schema import BenchResult
from .profiled import with_profile
from .groups import Run, measure_group

__all__ = ["run_benchmark"]


def run_benchmark(
    options: BenchOptions,
    *,
    progress: Callable[[str], None] | None = None,
    on_step: Callable[[str, int, int], None] | None = None,
    plan: Plan | None = None,
) -> BenchResult:
    """Measure every planned engine at every batch size (and concurrency level).

    ``plan`` replaces the plan made from the options (``resnet-deploy tune`` measures its own
    candidates this way: engines whose artifacts are file paths, one of them the baseline)."""
    say = progress or (lambda _msg: None)
    options = with_profile(options)  # --profile: its file, in its configuration
    providers = validate(options)
    if options.peak and importlib.util.find_spec("torch") is None:
        raise InputError("--peak measures an fp32 GEMM through PyTorch, which is not installed")
    threads = options.threads or cpu_count()
    load_start = os.getloadavg()
    with owned_tempdir("resnet-deploy-bench-") as tmp:
        workdir = Path(tmp)
        if plan is None:
            plan = plan_files(options, providers or ["cpu"]) if options.files else plan_zoo(options, providers)
        eval_paths = (eval_arrays(options.eval_data, plan.image_shape, plan.metadata, workdir, classes=plan.classes)
                      if options.eval_data else {})
        paths: dict[str, Path] = {}
        macs = peak = None
        if plan.architecture is not None:  # the zoo, or a file eager PyTorch rebuilds: torch is here
            from . import artifacts

            if not options.files:
                paths = artifacts.prepare_artifacts(options, plan.engines, say)
            macs = artifacts.count_model_macs(plan.architecture, plan.num_classes, plan.image_shape[-1])
            peak = artifacts.measure_peak_gflops(threads) if options.peak else None
        env = environment(threads)
        env.update(peak_gflops=peak, loadavg_start=list(load_start))
        groups = [(b, c) for b in options.batch_sizes for c in options.concurrency_levels()]
        total = len(groups) * (len(plan.engines) + options.effective_rounds())
        done = [0]

        def step(name: str) -> None:
            done[0] += 1
            if on_step:
                on_step(name, done[0], total)

        run = Run(options, plan, workdir, threads, options.effective_rounds(), paths, eval_paths, macs, peak, step)
        records = [r for batch, conc in groups for r in measure_group(run, batch, conc)]
        env["loadavg_end"] = list(os.getloadavg())
    return BenchResult(records, env, _options_dict(options), plan.baseline, plan.baseline_note)


def _options_dict(options: BenchOptions) -> dict[str, Any]:
    def plain(v: Any) -> Any:
        if isinstance(v, Path):
            return str(v)
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        return v

    return {k: plain(v) for k, v in asdict(options).items()}


