"""One measurement group: every engine at one batch size (and concurrency level), each in a worker
process of its own, the rounds interleaved; and the :class:`Record` each engine's results make."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from .._errors import VerificationError
from ..graph.verify import compare
from .inputs import write_input
from .options import BenchOptions
from .process import START_TIMEOUT_S, WorkerError, WorkerProcess
from .catalogue import GPU_BASELINE
from .plan import GPU_PROVIDERS, Plan
from .schema import Engine, FinishRequest, Finished, Ready, Record, RoundRequest, RoundResult, WorkerSpec
from .stats import instability, ratio, summarise

__all__ = ["Run", "measure_group"]


@dataclass
class Run:
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


def _spec(run: Run, engine: Engine, batch: int, concurrency: int, input_path: Path) -> WorkerSpec:
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
        return [RoundRequest(duration=options.duration / rounds,  # type: ignore[operator]
                             min_iterations=per_round_min, warmup=warmup)] * rounds
    base, extra = divmod(options.iterations, rounds)
    return [RoundRequest(iterations=base + (1 if i < extra else 0), warmup=warmup) for i in range(rounds)]


def measure_group(run: Run, batch: int, concurrency: int) -> list[Record]:
    plan = run.plan
    input_path = write_input((batch, *plan.image_shape), plan.input_dtype, run.workdir / f"input-b{batch}.npy")
    round_timeout = ((run.options.duration or 0) / run.rounds * 20 + 120 if run.options.iterations is None
                     else START_TIMEOUT_S)
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
            run.step(f"batch {batch}" + (f" c{concurrency}" if run.options.mode == "throughput" else "")
                     + f": round {i + 1}/{run.rounds}")
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


def _record(run: Run, engine: Engine, batch: int, concurrency: int, specs: dict[str, WorkerSpec],
            ready: dict[str, Ready], rounds: dict[str, list[RoundResult]], finished: dict[str, Finished],
            errors: dict[str, str]) -> Record:
    mode = run.options.mode
    base = Record(engine.name, engine.provider, engine.precision, batch, mode=mode, concurrency=concurrency,
                  threads=max(1, run.threads // concurrency), description=engine.description,
                  synthetic_calibration=(engine.precision == "int8" and not run.options.files
                                         and run.options.calibration is None),
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
