"""The Ray engine (``--engine ray``): the same job on Ray Data, for a cluster or a local Ray.

Reading and decoding run as Ray tasks (:func:`~.decode.decode_batch`, one CPU each); inference
runs in a pool of actors, each holding one Predictor (:func:`~.infer.infer_batch`): the rows are
the ones the local engine writes, and the driver writes them into the same shards, manifest and
resume rules (:class:`~.job.Job`). What Ray's users report, guarded against here:

- the actors never reserve every CPU (ray#44687: a pipeline whose actors hold all CPUs hangs,
  its readers never scheduled): :func:`ray_layout` leaves at least one CPU to the readers;
- a dead actor is an error, not a hang (ray#62746): actors are not restarted and their tasks not
  retried, so a death with a task in hand stops the job at once with one line, its finished
  shards kept; a death between tasks, which Ray Data waits on for ever, is noticed by
  :mod:`.ray_watch` and stops the job the same way;
- decoded images do not pile up in the object store (ray#44577): one batch is one Ray row and
  Ray Data's streaming executor holds a bounded number of them in flight.

On mixed machines a profile is refused on another machine, so several may be given: each actor
uses the one made for its machine and otherwise the model file on the CPU, and every row's
``engine`` column says which it ran.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import warnings
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import pyarrow as pa

from ..._errors import ResnetDeployError, RuntimeBackendError, first_line
from ..._extras import require
from ...graph.io import model_sha256
from ...runtime import Predictor
from .decode import DecodeSpec, decode_batch
from .infer import infer_batch
from .job import Job
from .ray_cluster import RayLayout, connect, ray_layout
from .ray_watch import ActorWatch, Executions, enter, start_roster, watched
from .rows import RowFormat
from .shards import Shard

__all__ = ["run_ray"]

@dataclasses.dataclass(frozen=True)
class _Deployment:
    """What each actor opens: the model file, the profiles it may use, and the digest to check."""

    model: str
    sha256: str
    profiles: tuple[str, ...]
    threads: int
    fmt: RowFormat
    provider: str = "cpu"  # for the file without a profile: asked for by name, used or refused on each node
    roster: Any = None  # the job's Roster actor, where each actor enters itself to be watched


class _InferActor:
    """One Predictor in a Ray actor: the profile made for this machine, else the file on the CPU."""

    def __init__(self, deployment: _Deployment) -> None:
        import ray

        self.predictor, label = _open_here(deployment)
        self.fmt = dataclasses.replace(deployment.fmt, engine=label)
        if deployment.roster is not None:
            enter(ray, deployment.roster)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        rows = [infer_batch(self.predictor, decoded, self.fmt) for decoded in batch["decoded"]]
        return {"key": batch["key"], "rows": rows}


def _open_here(deployment: _Deployment) -> tuple[Predictor, str]:
    from ...profile import ProfileError

    for profile in deployment.profiles:
        try:
            predictor = Predictor.from_profile(profile)
        except ProfileError:
            continue  # made for another machine (or another file): the next one may be this machine's
        return predictor, f"ray:{predictor.provider} ({Path(profile).name})"
    if model_sha256(deployment.model) != deployment.sha256:  # a node whose copy differs from the driver's
        raise RuntimeBackendError(f"{deployment.model} on {os.uname().nodename} is not the file the job started with "
                                  "(its SHA-256 differs): give every node the same model on shared storage")
    predictor = Predictor(deployment.model, provider=deployment.provider, threads=deployment.threads)
    return predictor, f"ray:{predictor.provider}" + (" (no profile for this machine)" if deployment.profiles else "")


def _decode(spec: DecodeSpec) -> Any:
    def decode(row: dict[str, Any]) -> dict[str, Any]:
        return {"key": row["key"], "decoded": decode_batch([str(p) for p in row["paths"]], spec)}
    return decode


def run_ray(job: Job, deployment_model: str, spec: DecodeSpec, *, batch_size: int, profiles: Sequence[str] = (),
            address: str | None = None, workers: int | None = None, threads: int | None = None,
            provider: str | None = None) -> RayLayout:
    """Do ``job``'s pending shards on Ray; returns the layout it used."""
    require("--engine ray", "ray", extra="ray")
    import ray

    started = connect(address)
    try:
        layout = ray_layout(int(ray.cluster_resources().get("CPU", 1)), workers=workers, threads=threads)
        roster = start_roster(ray)
        deployment = _Deployment(deployment_model, job.format.model_sha256, tuple(str(p) for p in profiles),
                                 layout.threads, job.format, provider or "cpu", roster)
        tasks = [(shard, batch) for shard in job.pending for batch in shard.batches(batch_size)]
        if tasks:
            executions = Executions()
            rows = watched(_rows(_dataset(ray, tasks, spec, deployment, layout)), ActorWatch(ray, roster),
                           executions.stop)
            try:
                _drain(job, tasks, rows)
            finally:
                rows.close()  # Ray Data stopped and its reader joined before Ray is shut down
        return layout
    finally:
        if started:
            ray.shutdown()


def _dataset(ray: Any, tasks: list[tuple[Shard, tuple[str, ...]]], spec: DecodeSpec, deployment: _Deployment,
             layout: RayLayout) -> Any:
    quiet_data_context(ray)
    items = [{"key": key, "paths": list(batch)} for key, (_, batch) in enumerate(tasks)]
    with warnings.catch_warnings():
        # max_restarts and max_task_retries reach the actors only as Ray remote args, which Ray 2.60
        # deprecates without a named replacement (hence the extra's <2.64). Ray Data's defaults
        # restart a dead actor and retry its task forever: the hang of ray#62746.
        warnings.filterwarnings("ignore", message=".*ray_remote_args.* is deprecated")
        return (ray.data.from_items(items, override_num_blocks=len(items))
                .map(_decode(spec), num_cpus=1)
                .map_batches(_InferActor, fn_constructor_kwargs={"deployment": deployment}, batch_size=1,
                             concurrency=layout.actors, num_cpus=layout.threads, max_restarts=0, max_task_retries=0))


def quiet_data_context(ray: Any) -> None:
    """Ray Data as the job wants it: rows in input order, no bar or log lines of its own."""
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True  # rows come back in input order: shards fill in order
    context.enable_progress_bars = False  # ours is the command's bar; Ray's would draw a second one
    for name in ("ray", "ray.data"):  # its lines per dataset, and its traceback of a failure we report in one line
        logging.getLogger(name).setLevel(logging.CRITICAL)


def _drain(job: Job, tasks: list[tuple[Shard, tuple[str, ...]]], batches: Iterable[pa.RecordBatch]) -> None:
    """Collect the rows in input order into shards and write each as it completes."""
    rows: list[pa.RecordBatch] = []
    count = 0
    for key, batch in enumerate(batches):
        shard = tasks[key][0]
        job.batch_done(batch)
        rows.append(batch)
        count += batch.num_rows
        if count == len(shard.paths):
            job.write_shard(shard, rows)
            rows, count = [], 0


def _rows(dataset: Any) -> Iterator[pa.RecordBatch]:
    try:
        for row in dataset.iter_rows():
            yield row["rows"]
    except ResnetDeployError:
        raise
    except Exception as exc:  # RayTaskError wraps ours; ActorDiedError, a lost node: Ray's own
        cause = _our_cause(exc)
        if cause is not None:
            raise cause from None
        raise RuntimeBackendError(f"the Ray job failed: {type(exc).__name__}: {first_line(exc)}; "
                                  "the finished shards are kept: the same command resumes the job") from None


def _our_cause(exc: BaseException) -> ResnetDeployError | None:
    """Our error inside Ray's wrappers (a task's error, an actor that died in its constructor:
    a provider refused on that node, a model that differs there), if there is one."""
    seen: set[int] = set()
    pending: list[object] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ResnetDeployError):
            return current
        pending += [getattr(current, name, None) for name in ("cause", "__cause__", "__context__")]
        said = _ours_in_text(str(getattr(current, "error_msg", "") or ""))
        if said is not None:
            return said
    return None


def _ours_in_text(text: str) -> ResnetDeployError | None:
    """An actor that died in its constructor keeps only the traceback's text (ActorDiedError's
    ``error_msg``): our error's last line, found in it, as the error again."""
    from ... import _errors

    for line in reversed(text.splitlines()):
        name, _, message = line.strip().partition(": ")
        kind = getattr(_errors, name.rsplit(".", 1)[-1], None)
        if message and isinstance(kind, type) and issubclass(kind, ResnetDeployError):
            return kind(f"a Ray actor could not open the model: {message}")
    return None
