"""``_manifest.json``: what job an output folder holds and which of its shards are finished.

The manifest is rewritten (atomically) after every shard. It pins what decides the rows
(:class:`JobKey`): the model's digest, the profile's, what the model answers, top-k, the shard
size and the INPUT arguments; and the stored input list by its SHA-256. A run whose key differs
is refused in one line naming the difference; a shard counts as finished only when listed here.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..._errors import OutputPathError
from ..._file_kind import open_regular
from ..._json import loads_with_depth
from .shards import SHARD_NAME

__all__ = ["JobKey", "Manifest", "ShardRecord", "read_manifest", "manifest_bytes", "difference", "MANIFEST", "FORMAT"]

MANIFEST = "_manifest.json"
FORMAT, VERSION = "resnet-deploy batch output", 1
_MAX_BYTES = 256 << 20


@dataclass(frozen=True)
class JobKey:
    """The arguments that decide a job's rows."""

    model_sha256: str
    profile_sha256: str | None
    output: str  # "logits" or "embedding"
    top_k: int | None  # None for an embedding model
    shard_size: int
    inputs: tuple[str, ...]  # the INPUT arguments, absolute


@dataclass(frozen=True)
class ShardRecord:
    name: str
    rows: int
    failed: int


@dataclass(frozen=True)
class Manifest:
    key: JobKey
    model: str  # the file the first run named (the key holds its digest)
    images: int
    inputs_sha256: str
    shards: tuple[ShardRecord, ...] = ()

    def with_shard(self, record: ShardRecord) -> "Manifest":
        kept = tuple(s for s in self.shards if s.name != record.name)
        return dataclasses.replace(self, shards=tuple(sorted((*kept, record), key=lambda s: s.name)))


def manifest_bytes(manifest: Manifest) -> bytes:
    payload = {"format": FORMAT, "version": VERSION, **dataclasses.asdict(manifest)}
    return (json.dumps(payload, indent=1) + "\n").encode()


def _damaged(path: Path, why: str) -> OutputPathError:
    return OutputPathError(f"{path} is damaged ({why}); remove the folder's contents to start over")


def read_manifest(path: Path) -> Manifest:
    """The manifest at ``path``; one that is not ours or not whole raises :class:`OutputPathError`."""
    try:
        with open_regular(path) as fh:  # a FIFO put at its name must not block the run
            data = fh.read(_MAX_BYTES + 1)
        value, depth = loads_with_depth(data)
    except (OSError, ValueError) as exc:
        raise _damaged(path, "not JSON" if isinstance(exc, ValueError) else exc.strerror or str(exc)) from exc
    if len(data) > _MAX_BYTES or depth > 4 or not isinstance(value, dict) or value.get("format") != FORMAT:
        raise OutputPathError(f"{path} is not the manifest of a resnet-deploy batch output")
    if value.get("version") != VERSION:
        raise OutputPathError(f"{path} is a version {value.get('version')!r} batch output; "
                              f"this toolkit writes version {VERSION}")
    try:
        key = value["key"]
        manifest = Manifest(
            key=JobKey(**{**key, "inputs": tuple(key["inputs"])}),
            model=value["model"], images=value["images"], inputs_sha256=value["inputs_sha256"],
            shards=tuple(ShardRecord(**s) for s in value["shards"]),
        )
    except (KeyError, TypeError) as exc:
        raise _damaged(path, f"missing or unexpected field {exc}") from exc
    # A shard's name becomes a path: only names of our pattern (no "../", no folders).
    if not _whole(manifest.images) or not all(isinstance(s.name, str) and SHARD_NAME.fullmatch(s.name)
                                               and _whole(s.rows) and _whole(s.failed) for s in manifest.shards):
        raise _damaged(path, "a shard or a count that is not one")
    return manifest


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


_WHAT = {
    "model_sha256": "another model", "profile_sha256": "another profile", "output": "another kind of output",
    "top_k": "another --top-k", "shard_size": "another --shard-size", "inputs": "other inputs",
}


def _short(value: Any) -> str:
    if isinstance(value, str) and len(value) == 64:
        return value[:12]  # a SHA-256
    if isinstance(value, tuple):
        return " ".join(value) if len(value) <= 3 else f"{' '.join(value[:3])} ... ({len(value)} inputs)"
    return str(value)


def difference(held: JobKey, asked: JobKey) -> str | None:
    """The first argument in which ``asked`` differs from the job ``held``, in words; None when equal."""
    for name, what in _WHAT.items():
        old, new = getattr(held, name), getattr(asked, name)
        if old != new:
            return f"{what} ({name}: {_short(old)}; this run: {_short(new)})"
    return None
