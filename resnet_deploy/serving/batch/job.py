"""A job in its output folder: started, resumed or refused, and its shards written.

:func:`open_job` decides, before any work, what a run does with ``--output``: start a new job,
resume the one there (same model, same result-deciding arguments), start over with ``--force``,
or refuse in one line. The :class:`Job` it yields is what every engine works on: the shards still
to do, the row format, and :meth:`Job.write_shard`, the one way a shard reaches the folder.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterator, Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..._atomic import atomic_path, atomic_write_bytes
from ..._errors import OutputPathError
from ..._file_kind import open_regular
from .folder import FolderState, claim, clear, folder_state, remove_temporaries
from .inputs import INPUTS_FILE, MAX_LIST_BYTES, inputs_bytes, list_inputs, normalise_specs, parse_inputs
from .manifest import MANIFEST, JobKey, Manifest, ShardRecord, difference, manifest_bytes, read_manifest
from .model import ModelFacts
from .options import BatchOptions, BatchProgress
from .rows import OK, PATH, STATUS, RowFormat
from .shards import Shard, plan_shards

__all__ = ["Job", "open_job", "ProgressCallback"]

ProgressCallback = Callable[[BatchProgress], None]


class Job:
    """One run's view of a job: every shard, those still to do, and the writer of finished ones."""

    def __init__(self, folder: Path, manifest: Manifest, shards: list[Shard], fmt: RowFormat,
                 progress: ProgressCallback | None) -> None:
        self.folder, self.manifest, self.shards, self.format = folder, manifest, shards, fmt
        done = {s.name for s in manifest.shards}
        self.pending = [s for s in shards if s.name not in done]
        self.skipped = len(shards) - len(self.pending)
        self.written = self.processed = self.failed = 0
        self.first_batch: tuple[float, int] | None = None  # when the first batch was done, and its rows
        self.last_batch_at = 0.0
        self._done = sum(s.rows for s in manifest.shards)
        self._failed_before = sum(s.failed for s in manifest.shards)
        self._progress = progress
        self.report()

    def report(self) -> None:
        if self._progress is not None:
            self._progress(BatchProgress(self._done, self.manifest.images, self._failed_before + self.failed))

    def batch_done(self, rows: pa.RecordBatch) -> None:
        """Count a batch whose rows an engine holds (progress between shards)."""
        self.last_batch_at = time.perf_counter()
        if self.first_batch is None:
            self.first_batch = (self.last_batch_at, rows.num_rows)
        self._done += rows.num_rows
        self.processed += rows.num_rows
        self.failed += _failed(rows)
        self.report()

    def pace(self, start: float) -> tuple[float, float]:
        """Seconds from ``start`` to the first batch's rows, and images per second after them
        (over the whole run when there was a single batch)."""
        if self.first_batch is None:
            return 0.0, 0.0
        first_at, first_rows = self.first_batch
        later = self.last_batch_at - first_at
        rate = ((self.processed - first_rows) / later if later > 0
                else self.processed / max(self.last_batch_at - start, 1e-9))
        return first_at - start, rate

    def write_shard(self, shard: Shard, batches: Sequence[pa.RecordBatch]) -> None:
        """Write ``shard``'s rows atomically, then record it in the manifest (atomically too): a
        run killed between the two redoes the shard, never loses or doubles a row."""
        table = pa.Table.from_batches(batches, schema=self.format.schema())
        if table.column(PATH).to_pylist() != list(shard.paths):  # every input exactly once, in order
            raise RuntimeError(f"{shard.name}: the engine returned rows for other images than the shard's")
        with atomic_path(self.folder / shard.name) as tmp:
            pq.write_table(table, tmp)
        self.manifest = self.manifest.with_shard(ShardRecord(shard.name, table.num_rows, _failed(table)))
        atomic_write_bytes(self.folder / MANIFEST, manifest_bytes(self.manifest))
        self.written += 1


def _failed(rows: pa.RecordBatch | pa.Table) -> int:
    return int(pc.sum(pc.not_equal(rows.column(STATUS), OK)).as_py() or 0)


def _finished(folder: Path, manifest: Manifest) -> Manifest:
    """The manifest without shards whose file is gone or not what it recorded (they are redone)."""
    kept = []
    for record in manifest.shards:
        with contextlib.suppress(OSError, pa.ArrowException), open_regular(folder / record.name) as shard:
            if pq.read_metadata(shard).num_rows == record.rows:  # anything but a regular file is redone
                kept.append(record)
    return replace(manifest, shards=tuple(kept))


PATH_MAX = 4096  # Linux's longest path: a stored list holds at most images x (PATH_MAX + 1) bytes


def _resume(folder: Path, manifest: Manifest, key: JobKey) -> list[str]:
    why = difference(manifest.key, key)
    if why is not None:
        raise OutputPathError(f"{folder} holds a job for {why}: pass --force to start over, or choose another --output")
    try:
        with open_regular(folder / INPUTS_FILE) as listed:  # no more than the recorded paths can fill
            data = listed.read(min(MAX_LIST_BYTES, manifest.images * (PATH_MAX + 1)) + 1)
    except OSError as exc:
        raise OutputPathError(f"{folder / INPUTS_FILE} cannot be read; pass --force to start over") from exc
    try:
        paths, digest = parse_inputs(data)
    except UnicodeDecodeError as exc:
        raise OutputPathError(f"{folder / INPUTS_FILE} cannot be read; pass --force to start over") from exc
    if digest != manifest.inputs_sha256 or len(paths) != manifest.images:
        raise OutputPathError(f"{folder / INPUTS_FILE} is not the list its manifest recorded; "
                              "pass --force to start over")
    return paths


def _start(folder: Path, key: JobKey, model: str, paths: list[str]) -> Manifest:
    data = inputs_bytes(paths)
    manifest = Manifest(key, model, len(paths), parse_inputs(data)[1])
    atomic_write_bytes(folder / INPUTS_FILE, data)
    atomic_write_bytes(folder / MANIFEST, manifest_bytes(manifest))  # last: the job exists from here
    return manifest


@contextlib.contextmanager
def open_job(options: BatchOptions, facts: ModelFacts, engine: str,
             progress: ProgressCallback | None = None) -> Iterator[Job]:
    """Start, resume or refuse the job of ``options`` in its output folder, which stays locked
    while the caller works in it. Every refusal is one :class:`OutputPathError` (or
    :class:`~resnet_deploy.InputError` for inputs), raised before any image is read."""
    folder = Path(options.output)
    key = JobKey(facts.sha256, facts.profile_sha256, facts.kind, options.top_k if facts.kind == "logits" else None,
                 options.shard_size, normalise_specs(options.inputs))
    state = folder_state(folder)
    if state is FolderState.FOREIGN:
        raise OutputPathError(f"--output {folder} holds files that are not a batch job's; choose a new or empty folder")
    if state is FolderState.ORPHAN_SHARDS and not options.force:
        raise OutputPathError(f"{folder} holds shards or an input list without a manifest (a start cut short?): "
                              "pass --force to start over")
    resume = state is FolderState.JOB and not options.force
    # The inputs are listed before the folder is touched: a missing input leaves an old job intact.
    paths = None if resume else list_inputs(key.inputs)
    with claim(folder):
        if folder_state(folder) is not state:  # another run wrote it while this one listed its inputs
            raise OutputPathError(f"{folder} changed while the inputs were listed (another run wrote it): "
                                  "run the command again")
        remove_temporaries(folder)
        if resume:
            manifest = _finished(folder, read_manifest(folder / MANIFEST))
            paths = _resume(folder, manifest, key)
        else:
            if state is FolderState.JOB:
                read_manifest(folder / MANIFEST)  # ours, and whole, before anything is removed
            clear(folder)
            manifest = _start(folder, key, facts.source, paths or [])
        fmt = RowFormat(facts.kind, options.top_k, facts.width, facts.sha256, engine)
        yield Job(folder, manifest, plan_shards(paths, options.shard_size), fmt, progress)
