"""What a batch job is asked to do (:class:`BatchOptions`), how far it is (:class:`BatchProgress`)
and what it did (:class:`BatchResult`): plain frozen data, the same for every engine."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..._errors import InputError

__all__ = ["BatchOptions", "BatchProgress", "BatchResult", "ENGINES", "MAX_SHARD_SIZE", "MAX_WORKERS"]

# The engines by name. A name here is a value of --engine; run_batch looks its runner up in
# run.py's table (the Ray engine adds "ray" to both).
ENGINES = ("local", "ray")
# A shard is written from memory in one piece: its rows are held until it is complete.
MAX_SHARD_SIZE = 1_000_000
# Decode processes: each is a Python process with its own decoder; more than this is a typo.
MAX_WORKERS = 256


def _positive(name: str, value: object, *, limit: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"{name} must be a whole number of at least 1, received {value!r}")
    if limit is not None and value > limit:
        raise InputError(f"{name} must be at most {limit:,}, received {value:,}")


@dataclass(frozen=True)
class BatchOptions:
    """One batch job: a model (a file, or a tune profile's configuration), inputs and an output folder.

    Args:
        inputs: files, folders (searched recursively for images), glob patterns, or ``@list.txt``
            (one path per line, relative paths relative to the list's folder).
        output: the folder of Parquet shards and ``_manifest.json``.
        model: an ONNX file; give it or ``profile``.
        profile: a deployment profile from ``resnet-deploy tune``: its model, provider and options.
        top_k: classes kept per image (a classifier; ignored for an embedding model).
        shard_size: images per Parquet file; it decides the shards, so a resumed job must keep it.
        batch_size: images decoded and run together.
        workers: decode processes, at most :data:`MAX_WORKERS`; None: half the cores (at least one).
        threads: inference threads; None: every core (the workers run beside the session).
        provider: execution provider (``auto`` when None); not with ``profile``.
        engine: where the work runs; one of :data:`ENGINES`.
        force: start over in an output folder that holds another job of ours.
        profiles: with ``engine="ray"``, more profiles of the same model for other machines of the
            cluster (each actor uses the one made for its machine, else the file on the CPU).
        ray_address: the Ray cluster to join (else ``RAY_ADDRESS``, else a local Ray).
    """

    inputs: tuple[str, ...]
    output: Path
    model: Path | None = None
    profile: Path | None = None
    top_k: int = 5
    shard_size: int = 1024
    batch_size: int = 16
    workers: int | None = None
    threads: int | None = None
    provider: str | None = None
    engine: str = "local"
    force: bool = False
    profiles: tuple[Path, ...] = ()
    ray_address: str | None = None

    def __post_init__(self) -> None:
        if (self.model is None) == (self.profile is None):
            raise InputError("give a model file or a profile (one of them)")
        if self.profile is not None and (self.provider is not None or self.threads is not None):
            raise InputError("a profile sets the provider and threads; drop --provider/--threads")
        if not self.inputs:
            raise InputError("give at least one input (a file, a folder, a glob or @list.txt)")
        if self.engine not in ENGINES:
            raise InputError(f"unknown engine {self.engine!r}; expected one of: {', '.join(ENGINES)}")
        if self.engine != "ray" and (self.profiles or self.ray_address):
            raise InputError("several profiles and a Ray address are for --engine ray; locally, give one --profile")
        _positive("top_k", self.top_k)
        _positive("shard_size", self.shard_size, limit=MAX_SHARD_SIZE)
        _positive("batch_size", self.batch_size, limit=4096)
        # The numbers are checked here, not by typer's min=1, so that a bad one is one line as elsewhere.
        if self.workers is not None:
            _positive("workers", self.workers, limit=MAX_WORKERS)
        if self.threads is not None:
            _positive("threads", self.threads, limit=1024)


@dataclass(frozen=True)
class BatchProgress:
    """Images written so far (finished shards of an earlier run included) out of the job's total."""

    done: int
    total: int
    failed: int


@dataclass(frozen=True)
class BatchResult:
    """What a run did. ``processed``/``failed``/``seconds`` are this run's; a resumed run skipped
    ``shards_skipped`` shards an earlier run had finished.

    ``startup_s`` is the time to the first batch's rows (the model loaded, the inputs listed, the
    workers started); ``images_per_s`` the pace after it, what a long job runs at."""

    output: Path
    images: int
    processed: int
    failed: int
    shards: int
    shards_written: int
    shards_skipped: int
    seconds: float
    startup_s: float
    images_per_s: float
    engine: str
    workers: int
    threads: int
