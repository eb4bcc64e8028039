"""``run_batch``: a job from its options to its folder of shards, on the engine it names."""

from __future__ import annotations

import time

from ..._errors import OnnxModelError
from .job import ProgressCallback, open_job
from .local import decode_spec, run_local, session_threads, worker_count
from .model import open_model
from .options import BatchOptions, BatchResult
from .pool import DecodePool

__all__ = ["run_batch"]


def run_batch(options: BatchOptions, *, progress: ProgressCallback | None = None) -> BatchResult:
    """Classify or embed every image of ``options.inputs`` into Parquet shards in ``options.output``.

    Everything that can be refused is refused before any image is read: the model, the inputs
    (a missing path, a glob without matches, an unreadable list) and the output folder (not ours,
    or holding another job). A run on a folder holding this job's unfinished shards resumes it.
    An image that cannot be classified is a row saying why, never the end of the job.

    Args:
        options: the job.
        progress: called after every batch with the images done so far (earlier runs' included).

    Returns:
        What this run did, with the number of images and the time it took.
    """
    start = time.perf_counter()
    if options.engine == "ray":
        return _run_on_ray(options, start, progress)
    predictor, facts = open_model(options, session_threads(options))
    with predictor:
        if not predictor.takes_images and predictor.input_dtype.kind != "f":
            raise OnnxModelError(f"{facts.source}: input {predictor.input_name!r} is {predictor.input_dtype}; images "
                                 "preprocess to floating point, so classifying them needs a float input")
        workers = worker_count(options, facts.threads)
        # The workers start first: their interpreters load while the inputs are listed.
        with DecodePool(workers, decode_spec(predictor)) as pool, \
                open_job(options, facts, f"{options.engine}:{facts.provider}", progress) as job:
            run_local(job, predictor, pool, options.batch_size)
    startup, rate = job.pace(start)
    return BatchResult(
        output=options.output, images=job.manifest.images, processed=job.processed, failed=job.failed,
        shards=len(job.shards), shards_written=job.written, shards_skipped=job.skipped,
        seconds=time.perf_counter() - start, startup_s=startup, images_per_s=rate, engine=job.format.engine,
        workers=workers, threads=facts.threads,
    )


def _run_on_ray(options: BatchOptions, start: float, progress: ProgressCallback | None) -> BatchResult:
    """The job on Ray: the driver reads the model's facts on its CPU (one thread; the profiles
    may all be for other machines of the cluster), the actors run it (:mod:`.ray_engine`)."""
    from .ray_cluster import check_ray_address
    from .ray_engine import run_ray

    profiles = tuple(str(p) for p in ((options.profile,) if options.profile else ()) + options.profiles)
    check_ray_address(options.ray_address)  # before the folder is touched: an address that answers
    predictor, facts = open_model(options, 1, for_facts_only=True)
    with predictor:
        spec = decode_spec(predictor)
        model = str(predictor.model_path)
    with open_job(options, facts, "ray", progress) as job:
        layout = run_ray(job, model, spec, batch_size=options.batch_size, profiles=profiles,
                         address=options.ray_address, workers=options.workers, threads=options.threads,
                         provider=options.provider)
    startup, rate = job.pace(start)
    return BatchResult(
        output=options.output, images=job.manifest.images, processed=job.processed, failed=job.failed,
        shards=len(job.shards), shards_written=job.written, shards_skipped=job.skipped,
        seconds=time.perf_counter() - start, startup_s=startup, images_per_s=rate, engine="ray",
        workers=layout.cpus - layout.actors * layout.threads, threads=layout.actors * layout.threads,
    )
