"""The local engine (``--engine local``, the default): decode workers feeding one inference session.

Worker processes decode and preprocess batches of paths (:func:`~.decode.decode_batch`); the main
process runs each decoded batch through its one Predictor (:func:`~.infer.infer_batch`) in input
order and hands every finished shard to :meth:`~.job.Job.write_shard`. A worker that dies costs a
restart of the pool, not the job (:mod:`.recover`). At most
:data:`BATCHES_PER_WORKER` batches per worker are in flight, a sliding window: memory is bounded
by the window and one shard's rows, whatever the number of images.

The session takes every core and half as many decode workers run beside it (on 2 cores: 2 threads
and 1 worker): decoding a photo costs about a third of a ResNet-18 forward pass, and the measured
split of the cores between them (1 worker + 1 thread) left the session starved.
"""

from __future__ import annotations

from collections import deque
from typing import Iterator

import pyarrow as pa

from ...runtime import Predictor, cpu_count
from .decode import DecodeSpec
from .infer import infer_batch
from .job import Job
from .options import BatchOptions
from .pool import DecodePool, WorkerDied
from .recover import decode_alone
from .shards import Shard

__all__ = ["run_local", "decode_spec", "session_threads", "worker_count", "BATCHES_PER_WORKER"]

BATCHES_PER_WORKER = 2


def session_threads(options: BatchOptions) -> int | None:
    """Inference threads for a model file (a profile brings its own: None): every core by default.

    Measured on 2 cores (ResNet-18, 2,000 JPEGs, docs/performance.md): one decode worker beside a
    session of 2 threads ran 54 images/s, against 31 for 1 worker + 1 thread and 45 for a plain
    loop. Decoding a photo costs a third of a forward pass, so the worker fits in the session's gaps.
    """
    if options.profile is not None:
        return None
    return options.threads if options.threads is not None else cpu_count()


def worker_count(options: BatchOptions, threads: int) -> int:
    """Decode workers: ``--workers``, else half the cores (at least one), beside the session."""
    if options.workers is not None:
        return options.workers
    return max(1, cpu_count() // 2)


def decode_spec(predictor: Predictor) -> DecodeSpec:
    return DecodeSpec(predictor.preprocessing, predictor.takes_images, str(predictor.input_dtype))


def run_local(job: Job, predictor: Predictor, pool: DecodePool, batch_size: int) -> None:
    """Do ``job``'s pending shards: ``pool`` decodes, ``predictor`` runs, in input order."""
    tasks: Iterator[tuple[Shard, tuple[str, ...]]] = (
        (shard, batch) for shard in job.pending for batch in shard.batches(batch_size))
    window: deque[tuple[Shard, tuple[str, ...]]] = deque()  # the batches in flight, in order

    def submit() -> None:
        task = next(tasks, None)
        if task is not None:
            pool.submit(task[1])
            window.append(task)

    for _ in range(BATCHES_PER_WORKER * len(pool)):
        submit()
    rows: list[pa.RecordBatch] = []
    count = 0
    while window:
        shard, paths = window[0]
        try:
            decoded = pool.result()
        except WorkerDied as died:
            decoded = decode_alone(pool, paths, died)  # restarts the pool: the rest is sent again
            for _shard, later in list(window)[1:]:
                pool.submit(later)
        window.popleft()
        submit()  # after reading: the worker that just answered takes the next batch
        batch = infer_batch(predictor, decoded, job.format)
        job.batch_done(batch)
        rows.append(batch)
        count += batch.num_rows
        if count == len(shard.paths):  # batches arrive in order and never cross shards
            job.write_shard(shard, rows)
            rows, count = [], 0
