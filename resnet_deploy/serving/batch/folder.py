"""The output folder: whose it is, a lock for the run, and starting over.

Only a folder of ours is ever written to or cleared: one that does not exist yet, an empty one, one
holding our manifest, or one holding nothing but names we write (a run killed before its first
manifest, or while ``--force`` cleared an old job). Anything else is refused, ``--force`` or not:
a folder of someone else's files is never emptied by a typo in ``--output``.
"""

from __future__ import annotations

import contextlib
import enum
import fcntl
import os
import re
from pathlib import Path
from typing import Iterator

from ..._errors import OutputPathError
from .inputs import INPUTS_FILE
from .manifest import MANIFEST
from .shards import SHARD_NAME

__all__ = ["FolderState", "folder_state", "claim", "clear", "remove_temporaries"]

# The temporary files of resnet_deploy._atomic's writes of our names: ".NAME.<8 random>.tmp".
_TEMPORARY = re.compile(r"\.(?:_manifest\.json|_inputs\.txt|part-\d{5,}\.parquet)\.[a-z0-9_]{8}\.tmp")


class FolderState(enum.Enum):
    NEW = "new"  # absent, empty, or holding only what a run killed before its first manifest left
    JOB = "job"  # holds our manifest
    ORPHAN_SHARDS = "orphan shards"  # our shards without a manifest (a --force cut short)
    FOREIGN = "foreign"


def folder_state(folder: Path) -> FolderState:
    if not os.path.lexists(folder):
        return FolderState.NEW
    if not folder.is_dir():
        raise OutputPathError(f"--output {folder} is not a folder")
    try:
        names = os.listdir(folder)
    except OSError as exc:
        raise OutputPathError(f"cannot read --output {folder}: {exc.strerror or exc}") from exc
    if MANIFEST in names:
        return FolderState.JOB
    leftovers = [n for n in names if not _TEMPORARY.fullmatch(n)]
    if not leftovers:
        return FolderState.NEW
    # A lone _inputs.txt may be a start cut short, or the user's own list (batch @DIR/_inputs.txt -o DIR):
    # it is replaced only with --force, like shards without a manifest.
    if all(SHARD_NAME.fullmatch(n) or n == INPUTS_FILE for n in leftovers):
        return FolderState.ORPHAN_SHARDS
    return FolderState.FOREIGN


@contextlib.contextmanager
def claim(folder: Path) -> Iterator[None]:
    """Create ``folder`` if needed and hold an exclusive lock on it for the run: two runs on one
    folder would each redo and replace the other's shards. The kernel drops the lock when the
    process dies, SIGKILL included."""
    if not folder.parent.is_dir():
        raise OutputPathError(f"the folder of --output does not exist: {folder.parent}")
    try:
        folder.mkdir(exist_ok=True)
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise OutputPathError(f"cannot create or open --output {folder}: {exc.strerror or exc}") from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OutputPathError(f"another batch run is writing to {folder}; "
                                  "wait for it, or choose another --output") from None
        if not os.access(folder, os.W_OK | os.X_OK):
            raise OutputPathError(f"--output {folder} is not writable")
        try:
            yield
        finally:  # a Ctrl-C between a temporary file's creation and its writer's cleanup leaves it
            with contextlib.suppress(OSError):
                remove_temporaries(folder)
    finally:
        os.close(fd)


def clear(folder: Path) -> None:
    """Remove our files from ``folder``, the manifest first: a clear cut short leaves a folder
    that is still recognisably ours (:attr:`FolderState.ORPHAN_SHARDS`), never a half job."""
    names = sorted(os.listdir(folder), key=lambda n: n != MANIFEST)
    for name in names:
        if name in (MANIFEST, INPUTS_FILE) or SHARD_NAME.fullmatch(name) or _TEMPORARY.fullmatch(name):
            with contextlib.suppress(FileNotFoundError):
                (folder / name).unlink()


def remove_temporaries(folder: Path) -> None:
    """Remove the temporary files of writes that a killed run left (SIGKILL runs no cleanup).
    Called under :func:`claim`'s lock, so no live writer of ours can own one, however young."""
    for name in os.listdir(folder):
        if _TEMPORARY.fullmatch(name):
            with contextlib.suppress(FileNotFoundError):
                (folder / name).unlink()
