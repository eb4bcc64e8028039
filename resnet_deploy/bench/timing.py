"""The timed loops of one round: synchronous runs one after another, or concurrent requests.

Each call is a prepared, synchronous run (GPU work is synchronised inside it), timed with
``time.perf_counter`` around it. A ``check`` given is run on each call's result once its time is
taken (a served model's answers: :mod:`.served_answers`), so no latency includes it; an error it
raises ends the round.
"""

from __future__ import annotations

import threading
import time
from typing import Callable, Sequence

__all__ = ["time_round", "time_concurrent"]

Call = Callable[[], object]
Check = Callable[[object], None]


def time_round(call: Call, *, duration: float | None, iterations: int | None, min_iterations: int = 1,
               check: Check | None = None) -> list[float]:
    """Latencies (ms) of back-to-back runs: ``iterations`` of them, or for ``duration`` seconds
    and at least ``min_iterations``."""
    times: list[float] = []
    deadline = time.perf_counter() + duration if iterations is None and duration is not None else None
    while True:
        t0 = time.perf_counter()
        result = call()
        t1 = time.perf_counter()
        times.append((t1 - t0) * 1000.0)
        if check is not None:
            check(result)
        if deadline is None:
            if len(times) >= (iterations or 1):
                return times
        elif t1 >= deadline and len(times) >= min_iterations:
            return times


def time_concurrent(
    calls: Sequence[Call], *, duration: float | None, iterations: int | None, min_iterations: int = 1,
    check: Check | None = None,
) -> tuple[list[float], float]:
    """One thread per call issues requests back to back (all against one shared model) until
    ``duration`` has passed, or until ``iterations`` requests have completed in all; returns the
    request latencies (ms) and the wall time from the first start to the last end (s)."""
    lock = threading.Lock()
    latencies: list[float] = []
    issued = [0]
    errors: list[BaseException] = []
    start = threading.Barrier(len(calls) + 1)
    deadline: list[float] = []

    def take() -> bool:
        with lock:
            if iterations is not None:
                if issued[0] >= iterations:
                    return False
            elif time.perf_counter() >= deadline[0] and issued[0] >= min_iterations:
                return False
            issued[0] += 1
            return True

    def client(call: Call) -> None:
        start.wait()
        try:
            while take():
                t0 = time.perf_counter()
                result = call()
                ms = (time.perf_counter() - t0) * 1000.0
                with lock:
                    latencies.append(ms)
                if check is not None:
                    check(result)
        except BaseException as exc:  # re-raised in the caller's thread
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(c,), daemon=True) for c in calls]
    for t in threads:
        t.start()
    deadline.append(time.perf_counter() + (duration or 0.0))
    t_start = time.perf_counter()
    start.wait()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t_start
    if errors:
        raise errors[0]
    return latencies, wall
