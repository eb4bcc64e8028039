"""Order statistics, per-round ratios against the baseline, and the instability flag."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .schema import P90_P50_LIMIT, ROUND_SPREAD_LIMIT, RoundResult

__all__ = ["Summary", "summarise", "Ratio", "ratio", "instability"]


@dataclass(frozen=True)
class Summary:
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    std_ms: float
    iterations: int
    images_per_s: float


def _throughput(rounds: Sequence[RoundResult]) -> float:
    wall = sum(r.wall_s for r in rounds)
    return sum(r.images for r in rounds) / wall if wall > 0 else 0.0


def summarise(rounds: Sequence[RoundResult], batch: int, mode: str) -> Summary:
    """Latency percentiles over every timed run of every round. Images/s: the batch over the
    median latency for synchronous runs; images completed over wall time in throughput mode."""
    arr = np.concatenate([np.asarray(r.latencies_ms, dtype=np.float64) for r in rounds])
    p50, p90, p99 = (float(v) for v in np.percentile(arr, [50, 90, 99]))
    ips = batch * 1000.0 / p50 if mode == "latency" else _throughput(rounds)
    return Summary(p50, p90, p99, float(arr.mean()), float(arr.std()), int(arr.size), ips)


@dataclass(frozen=True)
class Ratio:
    """Speed of an engine relative to its baseline (> 1: faster): the headline and per round.

    ``overall`` is the median of the per-round ratios, so it always lies inside the per-round
    range it is printed with. (The ratio of the two pooled medians did not: a baseline whose
    slow rounds hold most of its runs gave 2.13x beside a range of 2.24-5.34x.)"""

    overall: float
    per_round: tuple[float, ...]

    @property
    def low(self) -> float:
        return min(self.per_round)

    @property
    def high(self) -> float:
        return max(self.per_round)


def ratio(engine: Sequence[RoundResult], baseline: Sequence[RoundResult], batch: int, mode: str) -> Ratio:
    """Per round, latency mode: baseline median / engine median; throughput mode: engine
    images/s over the baseline's. Round i of the engine ran right after round i of the baseline
    (interleaved), so each round's ratio compares the two under the same load; the headline is
    the median of those ratios."""
    def speed(rounds: Sequence[RoundResult]) -> float:
        s = summarise(rounds, batch, mode)
        return 1000.0 / s.p50_ms if mode == "latency" else s.images_per_s

    per_round = tuple(speed([e]) / speed([b]) for e, b in zip(engine, baseline))
    return Ratio(float(np.median(per_round)), per_round)


def instability(summary: Summary, spread: Ratio | None) -> str | None:
    """Why a measurement should not be trusted, or None: a long tail (p90/p50 above
    :data:`P90_P50_LIMIT`) or rounds that disagree (max/min of the per-round ratios above
    :data:`ROUND_SPREAD_LIMIT`)."""
    reasons = []
    tail = summary.p90_ms / summary.p50_ms
    if tail > P90_P50_LIMIT:
        reasons.append(f"p90/p50 {tail:.2f} > {P90_P50_LIMIT:g}")
    if spread is not None and len(spread.per_round) > 1 and spread.low > 0:
        swing = spread.high / spread.low
        if swing > ROUND_SPREAD_LIMIT:
            reasons.append(f"round ratios {spread.low:.2f}-{spread.high:.2f}x "
                           f"(max/min {swing:.2f} > {ROUND_SPREAD_LIMIT:g})")
    return "; ".join(reasons) or None
