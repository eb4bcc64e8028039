"""What a benchmark run is asked to do, and the checks that refuse nonsense before any work."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .._errors import InputError
from .._names import TRITON_MODEL_NAME
from ..runtime import cpu_count, resolve_provider
# The cache's functions lived here; tests and scripts import them from here still.
from .schema import DEFAULT_REQUEST_TIMEOUT_S  # noqa: F401 - the option's default, named here too
from .cache import CACHE_MARKER, TRT_CACHE_KEY, cache_usage, clear_cache, make_cache_entry  # noqa: F401

__all__ = ["BenchOptions", "validate", "MODES", "PRECISIONS", "LIMITS", "DEFAULT_REQUEST_TIMEOUT_S"]

MODES = ("latency", "throughput")
PRECISIONS = ("fp32", "bf16", "fp16", "int8")
# Caps that catch a typo (an extra zero, a unit mix-up) before it keeps a machine busy for a day.
LIMITS = {
    "duration": 3600.0,  # seconds of timed runs per engine and batch size
    "iterations": 10**6,
    "warmup": 10**4,
    "rounds": 100,
    "batch_size": 4096,
    "request_timeout": 3600.0,  # seconds one request to a served model may take
}
DEFAULT_ROUNDS = 5


@dataclass
class BenchOptions:
    """Options of :func:`resnet_deploy.bench.run_benchmark`.

    Either ``model`` (a registered name: the toolkit exports, optimizes and quantizes it) or
    ``files`` (ONNX files measured as they are on each of ``providers``; default ``cpu``).
    """

    model: str = "resnet50"
    files: Sequence[str | Path] = ()
    weights: str | Path | None = None
    batch_sizes: Sequence[int] = (1,)
    providers: Sequence[str] | None = None  # None: every available provider (files: cpu)
    precisions: Sequence[str] | None = None  # None: every precision
    threads: int | None = None
    duration: float | None = 3.0
    iterations: int | None = None
    warmup: int = 5
    min_iterations: int = 10
    rounds: int | None = None  # interleaved rounds; None: 5 (at most --iterations)
    mode: str = "latency"
    concurrency: Sequence[int] | None = None  # throughput mode; None: 1, 2, 4
    compile: bool = False
    peak: bool = False
    eval_data: str | Path | None = None
    calibration: str | Path | None = None
    cache_dir: str | Path | None = None
    engines: Sequence[str] | None = None  # restrict to these engine names
    urls: Sequence[str] = ()  # Triton servers of the first file's model (http://, grpc:// or HOST:PORT)
    served_model: str | None = None  # its name there; None: the first file's stem, as `triton` names it
    # Seconds one request to a served model may take (None: DEFAULT_REQUEST_TIMEOUT_S); the first
    # that takes longer fails that served engine at every batch size and concurrency still to come.
    request_timeout: float | None = None
    # A deployment profile (bench --profile): its model file, measured in its configuration
    # (resnet_deploy.bench.profiled), as serve --profile serves it.
    profile: str | Path | None = None

    def cache_folder(self) -> Path:
        """Where exported models (and TensorRT engines) are cached."""
        if self.cache_dir:
            return Path(self.cache_dir)
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        return Path(base) / "resnet-deploy" / "bench"

    def effective_rounds(self) -> int:
        if self.rounds is not None:
            return self.rounds
        return min(DEFAULT_ROUNDS, self.iterations) if self.iterations else DEFAULT_ROUNDS

    def concurrency_levels(self) -> list[int]:
        if self.mode == "latency":
            return [1]
        return list(self.concurrency or (1, 2, 4))


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _bounded(name: str, value: float | int, low: float, high: float, *, flag: str | None = None) -> None:
    flag = flag or f"--{name.replace('_', '-')}"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError(f"{flag} must be a finite number, received {value!r}")
    if not low <= value <= high:
        raise InputError(f"{flag} must be between {_fmt(low)} and {_fmt(high)}, received {_fmt(value)}")


def validate(options: BenchOptions) -> list[str] | None:
    """Refuse non-finite or absurd settings with one clear message; return the providers resolved
    (by :func:`resnet_deploy.runtime.resolve_provider`, which also refuses unknown or missing ones),
    or None for every available provider."""
    cores = cpu_count()
    if not options.batch_sizes:
        raise InputError("no batch size given")
    for b in options.batch_sizes:
        if b < 1:
            raise InputError(f"batch sizes must be at least 1, received {b}")
        _bounded("batch_size", b, 1, LIMITS["batch_size"], flag="--batch-size")
    if options.iterations is not None:
        _bounded("iterations", options.iterations, 1, LIMITS["iterations"])
    elif options.duration is None:
        raise InputError("give --duration or --iterations")
    else:
        _bounded("duration", options.duration, 0, LIMITS["duration"])
        if options.duration <= 0:
            raise InputError(f"--duration must be positive, received {_fmt(options.duration)}")
    _bounded("warmup", options.warmup, 0, LIMITS["warmup"])
    if options.threads is not None:
        _bounded("threads", options.threads, 1, 4 * cores, flag=f"--threads (this process may use {cores} cores)")
    rounds = options.effective_rounds()
    _bounded("rounds", rounds, 1, LIMITS["rounds"])
    if options.iterations is not None and rounds > options.iterations:
        raise InputError(f"--rounds ({rounds}) cannot exceed --iterations ({options.iterations}): "
                         "each round needs a run")
    if options.mode not in MODES:
        raise InputError(f"unknown mode {options.mode!r}; expected {' or '.join(MODES)}")
    if options.concurrency is not None and options.mode != "throughput":
        raise InputError("--concurrency applies to --mode throughput")
    levels = options.concurrency_levels()
    if not levels:
        raise InputError("no concurrency level given")
    for c in levels:
        _bounded("concurrency", c, 1, max(16, 4 * cores))
    for p in options.precisions or ():
        if p not in PRECISIONS:
            raise InputError(f"unknown precision {p!r}; expected one of {', '.join(PRECISIONS)}")
    if options.files:
        for flag, value in (("--calibration", options.calibration), ("--precision", options.precisions),
                            ("--engines", options.engines), ("--compile", options.compile)):
            if value:
                raise InputError(f"{flag} applies to a model of the zoo (--depth/--model); "
                                 "ONNX files are measured as they are")
    else:
        from .. import get_model_spec  # the zoo needs torch; a file benchmark does not

        get_model_spec(options.model)
    _check_served(options)
    providers = options.providers or (["cpu"] if options.files else None)
    return list(dict.fromkeys(resolve_provider(p) for p in providers)) if providers is not None else None


def _check_served(options: BenchOptions) -> None:
    """``--url``: the served model is measured beside the file it was made from."""
    if not options.urls:
        if options.served_model is not None:
            raise InputError("a served model's name applies with --url")
        if options.request_timeout is not None:
            raise InputError("--request-timeout applies with --url")
        return
    if options.request_timeout is not None:
        _bounded("request_timeout", options.request_timeout, 0, LIMITS["request_timeout"])
        if options.request_timeout <= 0:
            raise InputError(f"--request-timeout must be positive, received {_fmt(options.request_timeout)}")
    if not options.files:
        raise InputError("--url measures a served model beside the ONNX file it serves: give that file too")
    from .served import parse_url

    seen: set[tuple[str, str]] = set()
    for url in options.urls:
        if (served := parse_url(url)) in seen:
            raise InputError(f"--url names {served[0]}://{served[1]} twice: each server is measured once")
        seen.add(served)
    if options.served_model is not None and not TRITON_MODEL_NAME.match(options.served_model):
        raise InputError(f"invalid served model name {options.served_model!r}")
