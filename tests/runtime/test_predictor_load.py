"""The Predictor under load: many threads on one session, and sessions made and closed by the hundred."""

from __future__ import annotations

import gc
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import psutil

from resnet_deploy.runtime import Predictor

from .test_runtime import native_threads


def test_eight_threads_mixed_batches(resnet20_onnx: Path) -> None:
    rng = np.random.default_rng(1)
    sizes = rng.integers(1, 9, 320)
    batches = [rng.standard_normal((int(n), 3, 32, 32), dtype=np.float32) for n in sizes]
    with Predictor(resnet20_onnx, provider="cpu", threads=1) as p:
        expected = [p.run(b) for b in batches]
        with ThreadPoolExecutor(8) as pool:
            got = list(pool.map(p.run, batches))
    mismatches = sum(not np.array_equal(a, b) for a, b in zip(got, expected))
    print(f"{len(batches)} calls from 8 threads, batch sizes 1-8: {mismatches} mismatches")
    assert mismatches == 0


def test_create_and_close_100_times_is_flat(resnet20_onnx: Path) -> None:
    proc = psutil.Process()
    x = np.zeros((2, 3, 32, 32), np.float32)

    def cycle(n: int) -> None:
        for _ in range(n):
            with Predictor(resnet20_onnx, provider="cpu") as p:
                p.run(x)
        gc.collect()

    cycle(10)  # allocator and onnxruntime caches warm up first
    # onnxruntime's intra-op pool is native threads, invisible to threading.active_count():
    # count the kernel's tasks of this process.
    threads_before, rss_before = native_threads(), proc.memory_info().rss
    cycle(100)
    growth_mb = (proc.memory_info().rss - rss_before) / 2**20
    print(f"RSS growth over 100 create/close cycles: {growth_mb:.1f} MB; native threads {threads_before} -> "
          f"{native_threads()}")
    assert growth_mb < 30  # a leaked session of this model is ~1 MB of weights plus arenas: 100 would show
    assert native_threads() == threads_before
