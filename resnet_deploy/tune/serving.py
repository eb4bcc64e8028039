"""``tune --mode throughput``: how to lay a verified configuration out for a service on a CPU.

A service runs several model instances side by side (Triton's ``instance_group``), each a session
of its own with a share of the cores. For every verified CPU-side candidate and every layout
``instances x threads`` that fills this process's cores (``instances`` dividing them), the
benchmark measures images/s and the client-side p99 under as many concurrent requests as there
are instances, one session per request thread (the benchmark's ``instances`` engine option).
The layout with the most images/s whose p99 stays within ``max_p99_ms`` wins; the profile records
it, and ``triton --profile`` writes its instance count and threads.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable

from .._errors import InputError
from ..bench.options import MODES
from ..bench.plan import Plan
from ..bench.schema import Engine, Record
from ..profile.deployment import ServingLayout
from ..serving.triton.options import MAX_INSTANCES

__all__ = ["Layout", "ServingChoice", "layouts", "choose_layout", "check_serving_options", "CPU_PROVIDERS", "MODES"]


CPU_PROVIDERS = ("cpu", "openvino")  # what runs on this machine's cores; GPUs are laid out by their own rules


@dataclass(frozen=True)
class Layout:
    engine: str
    instances: int
    threads: int  # intra-op threads per instance
    images_per_s: float | None
    p50_ms: float | None
    p99_ms: float | None
    within_bound: bool
    error: str | None = None


@dataclass(frozen=True)
class ServingChoice:
    best: Layout
    layouts: list[Layout]
    max_p99_ms: float | None

    def to_profile(self) -> ServingLayout:
        """The profile's ``serving`` layout."""
        b = self.best
        return ServingLayout(instances=b.instances, threads=b.threads, images_per_s=b.images_per_s, p50_ms=b.p50_ms,
                             p99_ms=b.p99_ms, max_p99_ms=self.max_p99_ms, candidate=b.engine)


def check_serving_options(mode: str, max_p99_ms: float | None) -> None:
    """Before any work: a known mode, and a p99 bound that is a positive number, with throughput only."""
    if mode not in MODES:
        raise InputError(f"unknown mode {mode!r}; expected {' or '.join(MODES)}")
    if max_p99_ms is None:
        return
    if mode != "throughput":
        raise InputError("--max-p99-ms applies to --mode throughput")
    if isinstance(max_p99_ms, bool) or not isinstance(max_p99_ms, (int, float)) or not 0 < max_p99_ms <= 3_600_000:
        raise InputError("--max-p99-ms must be a positive number of milliseconds (at most an hour), "
                         f"received {max_p99_ms!r}")


def layouts(cores: int) -> list[tuple[int, int]]:
    """``(instances, threads)`` pairs that fill ``cores``: 1 x cores, ..., cores x 1, with at most
    the instances ``triton`` and ``serve`` take (:data:`MAX_INSTANCES`)."""
    return [(i, cores // i) for i in range(1, min(cores, MAX_INSTANCES) + 1) if cores % i == 0]


def choose_layout(
    candidates: list[Engine],
    reference: Engine,
    plan: Plan,
    bench: Any,
    *,
    cores: int,
    max_p99_ms: float | None,
    run: Callable[..., Any],
) -> ServingChoice:
    """Measure every (candidate, layout) and pick the most images/s within the p99 bound.

    ``bench`` is the tune run's :class:`BenchOptions`; ``run`` is :func:`run_benchmark` (passed
    in, so that this module stays below the benchmark's orchestration).
    """
    cpu = [e for e in candidates if e.provider in CPU_PROVIDERS]
    if not cpu:
        raise InputError("--mode throughput lays out CPU instances; no verified candidate runs on the CPU here")
    engines = [replace(e, options={**e.options, "instances": True})
               for e in [reference, *[c for c in cpu if c.name != reference.name]]]
    sizes = [i for i, _ in layouts(cores)]
    served = replace(plan, engines=tuple(engines))
    result = run(replace(bench, mode="throughput", concurrency=sizes, threads=cores, providers=None), plan=served)
    verified = {e.name for e in cpu}
    rows = [_layout(r, cores, max_p99_ms) for r in result.records if r.engine in verified]
    feasible = [row for row in rows if row.within_bound and row.images_per_s]
    if not feasible:
        tightest = min((row.p99_ms for row in rows if row.p99_ms is not None), default=None)
        raise InputError(f"no layout met --max-p99-ms {max_p99_ms:g}"
                         + (f"; the lowest p99 measured was {tightest:.2f} ms" if tightest is not None else ""))
    best = max(feasible, key=lambda row: row.images_per_s or 0.0)
    return ServingChoice(best, rows, max_p99_ms)


def _layout(r: Record, cores: int, bound: float | None) -> Layout:
    within = r.error is None and r.p99_ms is not None and (bound is None or r.p99_ms <= bound)
    return Layout(r.engine, r.concurrency, max(1, cores // r.concurrency), r.images_per_s, r.p50_ms, r.p99_ms,
                  within, r.error)
