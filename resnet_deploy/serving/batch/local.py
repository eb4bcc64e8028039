"""The local engine (``--engine local``, the default): decode workers feeding one inference session.

Worker processes decode and preprocess batches of paths (:func:`~.decode.decode_batch`); the main
process runs each decoded batch through its one Predictor (:func:`~.infer.infer_batch`) in input
order and hands every finished shard to :meth:`~.job.Job.write_shard`. A worker that dies costs a
restart of the pool, not the job (:mod:`.recover`). At most
:data:`BATCHES_PER_WORKER` batches per worker are in flight, a sliding window: memory is bounded
by the window and one shard's rows, whatever the number of images.

The cores are shared: decode workers plus inference threads equal the cores this process may
use, half each by default (on 2 cores, 1 worker and 1 thread), since decoding a photo costs
about as much CPU as a ResNet-18 forward pass.
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
    """Inference threads for a model file (a profile brings its own: None)."""
    if options.profile is not None:
        return None
    cores = cpu_count()
    if options.threads is not None:
        return options.threads
    workers = options.workers if options.workers is not None else max(1, cores // 2)
    return max(1, cores - workers)


def worker_count(options: BatchOptions, threads: int) -> int:
    """Decode workers: ``--workers``, else the cores the session's threads leave (at least one)."""
    if options.workers is not None:
        return options.workers
    cores = cpu_count()
    return max(1, cores // 2) if options.profile is None and options.threads is None else max(1, cores - threads)


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
