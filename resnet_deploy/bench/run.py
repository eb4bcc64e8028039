"""Orchestration: plan -> artifacts -> one persistent worker per engine -> interleaved rounds -> records.

For each batch size (and concurrency level) every engine gets its own worker process, started
one after another (so start-ups never overlap). The parent then interleaves rounds, A B C A B C
..., each worker timing ``duration / rounds`` seconds (or ``iterations / rounds`` runs) per round
while the others wait idle. Load that comes and goes hits every engine alike, and the per-round
ratios against the baseline show how much the machine moved under the measurement.
"""

from __future__ import annotations

import importlib.util
import math
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .._errors import InputError, VerificationError
from .._owned import owned_tempdir
from ..runtime.environment import environment
from ..runtime import cpu_count
from ..graph.verify import compare
from ..precision.calibration import eval_arrays
from .inputs import write_input
from .options import BenchOptions, validate
from .process import START_TIMEOUT_S, WorkerError, WorkerProcess
from .catalogue import GPU_BASELINE
from .plan import GPU_PROVIDERS, Plan, plan_files, plan_zoo
from .schema import BenchResult, Engine, FinishRequest, Finished, Ready, Record, RoundRequest, RoundResult, WorkerSpec
from .profiled import with_profile
from .stats import instability, ratio, summarise

__all__ = ["run_benchmark"]

@dataclass
class _Run:
    """What every measurement group of one run shares."""

    options: BenchOptions
    plan: Plan
    workdir: Path
    threads: int
    rounds: int
    paths: dict[str, Path]
    eval_paths: dict[str, str]
    macs: int | None
    peak_gflops: float | None
    step: Callable[[str], None]
    gone: dict[str, str] = field(default_factory=dict)  # engines that cannot answer again -> the group that found it

    def failed(self, name: str, exc: WorkerError, group: str, when: str = "") -> str:
        """The error of engine ``name`` in ``group``; an engine that is gone is not asked again."""
        if exc.engine_gone:
            self.gone.setdefault(name, group)
        return f"{when}{exc}"


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

        run = _Run(options, plan, workdir, threads, options.effective_rounds(), paths, eval_paths, macs, peak, step)
        records = [r for batch, conc in groups for r in _measure_group(run, batch, conc)]
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


def _spec(run: _Run, engine: Engine, batch: int, concurrency: int, input_path: Path) -> WorkerSpec:
    model_path: Path | str | None = engine.artifact
    if run.paths and engine.artifact:
        from .artifacts import artifact_path

        model_path = artifact_path(run.paths, engine, batch)
    return WorkerSpec(
        engine=engine, batch_size=batch, threads=max(1, run.threads // concurrency), concurrency=concurrency,
        input_path=str(input_path), output_path=str(run.workdir / f"out-{engine.name}-b{batch}-c{concurrency}.npy"),
        warmup=run.options.warmup, architecture=run.plan.architecture, num_classes=run.plan.num_classes,
        weights=str(run.options.weights) if run.options.weights else None,
        model_path=str(model_path) if model_path else None,
        trt_cache_dir=str(run.options.cache_folder() / "tensorrt"),
        eval_x_path=run.eval_paths.get("eval_x_path"), eval_y_path=run.eval_paths.get("eval_y_path"),
    )


def _requests(options: BenchOptions, rounds: int) -> list[RoundRequest]:
    """The request of each round: an equal share of the duration, or of the iterations."""
    per_round_min = max(1, math.ceil(options.min_iterations / rounds))
    warmup = min(1, options.warmup)  # one untimed run per round: the others ran in between
    if options.iterations is None:
        return [RoundRequest(duration=options.duration / rounds, min_iterations=per_round_min, warmup=warmup)] * rounds  # type: ignore[operator]
    base, extra = divmod(options.iterations, rounds)
    return [RoundRequest(iterations=base + (1 if i < extra else 0), warmup=warmup) for i in range(rounds)]


def _measure_group(run: _Run, batch: int, concurrency: int) -> list[Record]:
    plan = run.plan
    input_path = write_input((batch, *plan.image_shape), plan.input_dtype, run.workdir / f"input-b{batch}.npy")
    round_timeout = (run.options.duration or 0) / run.rounds * 20 + 120 if run.options.iterations is None else START_TIMEOUT_S
    started: list[WorkerProcess] = []
    live: dict[str, WorkerProcess] = {}
    specs: dict[str, WorkerSpec] = {}
    ready: dict[str, Ready] = {}
    rounds: dict[str, list[RoundResult]] = {e.name: [] for e in plan.engines}
    finished: dict[str, Finished] = {}
    errors: dict[str, str] = {}
    group = f"b{batch}" + (f" c{concurrency}" if run.options.mode == "throughput" else "")
    try:
        for engine in plan.engines:
            specs[engine.name] = _spec(run, engine, batch, concurrency, input_path)
            run.step(f"{engine.name} {group}: start")
            if engine.name in run.gone:  # a served model that stopped answering: not asked again
                errors[engine.name] = f"not measured: the server stopped answering at {run.gone[engine.name]}"
                continue
            worker = WorkerProcess(specs[engine.name], run.workdir, f"{engine.name}-b{batch}-c{concurrency}")
            started.append(worker)
            try:
                ready[engine.name] = worker.receive(START_TIMEOUT_S)
                live[engine.name] = worker
            except WorkerError as exc:
                errors[engine.name] = run.failed(engine.name, exc, group)
                worker.close()
        for i, request in enumerate(_requests(run.options, run.rounds)):
            run.step(f"batch {batch}" + (f" c{concurrency}" if run.options.mode == "throughput" else "") + f": round {i + 1}/{run.rounds}")
            for name, worker in list(live.items()):
                try:
                    rounds[name].append(worker.ask(request, round_timeout))
                except WorkerError as exc:
                    errors[name] = run.failed(name, exc, group, f"round {i + 1}: ")
                    del live[name]
                    worker.close()
        for name, worker in live.items():
            try:
                finished[name] = worker.ask(FinishRequest(), START_TIMEOUT_S)
            except WorkerError as exc:
                errors[name] = run.failed(name, exc, group, "finish: ")
    finally:
        for worker in started:
            worker.close()
    return [_record(run, e, batch, concurrency, specs, ready, rounds, finished, errors) for e in plan.engines]


def _record(run: _Run, engine: Engine, batch: int, concurrency: int, specs: dict[str, WorkerSpec], ready: dict[str, Ready],
            rounds: dict[str, list[RoundResult]], finished: dict[str, Finished], errors: dict[str, str]) -> Record:
    mode = run.options.mode
    base = Record(engine.name, engine.provider, engine.precision, batch, mode=mode, concurrency=concurrency,
                  threads=max(1, run.threads // concurrency), description=engine.description,
                  synthetic_calibration=engine.precision == "int8" and not run.options.files and run.options.calibration is None,
                  source=specs[engine.name].model_path if run.options.files and engine.backend != "pytorch" else None)
    if engine.name in errors:
        return replace(base, error=errors[engine.name])
    ok = {n for n in finished if n not in errors}
    summary = summarise(rounds[engine.name], batch, mode)
    reference = run.plan.baseline
    if engine.provider in GPU_PROVIDERS and GPU_BASELINE in ok and engine.name != GPU_BASELINE:
        reference = GPU_BASELINE
    speed = ratio(rounds[engine.name], rounds[reference], batch, mode) if reference in ok else None
    reason = instability(summary, speed)
    error = None
    if run.plan.baseline in ok:
        try:
            out = np.load(specs[engine.name].output_path)
            error = compare(out, np.load(specs[run.plan.baseline].output_path), rtol=1.0).max_rel_error
        except VerificationError as exc:  # different output shapes, or not finite: not comparable
            if engine.backend == "triton":  # a served answer that cannot be compared is no measurement
                return replace(base, error=f"the served answer cannot be compared with {run.plan.baseline}'s: {exc}")
            error = None
    gflops = 2.0 * run.macs * summary.images_per_s / 1e9 if run.macs else None
    done, start = finished[engine.name], ready[engine.name]
    return replace(
        base,
        **asdict(summary),
        baseline=reference if speed else None,
        speedup_vs_baseline=speed.overall if speed else None,
        speedup_min=speed.low if speed else None,
        speedup_max=speed.high if speed else None,
        unstable=reason is not None,
        unstable_reason=reason,
        rounds=len(rounds[engine.name]),
        session_create_ms=start.session_create_ms,
        first_run_ms=start.first_run_ms,
        peak_rss_mb=done.peak_rss_mb,
        rss_mb=done.rss_mb,
        torch_imported=done.torch_imported,
        max_rel_error=error,
        gflops=gflops,
        peak_fraction=gflops / run.peak_gflops if gflops and run.peak_gflops else None,
        accuracy=done.accuracy,
        server_queue_ms=done.server_queue_ms,
        server_compute_ms=done.server_compute_ms,
        server_batch=done.server_batch,
        worker_pid=start.pid,
    )
