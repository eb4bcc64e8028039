"""A folder built beside its target and moved into place when complete: :func:`staged_folder`,
the one way the toolkit writes a folder (a bundle, a Triton repository entry).

The staging folder is ``.NAME.XXXXXXXX`` beside the target, and holds a marker file its writer
keeps an ``flock`` on while it builds. A run killed with SIGKILL runs no cleanup, but the kernel
drops its lock: the next write of the same target removes a staging folder whose marker nobody
holds (and only those: a folder without our marker is never touched, nor one a live writer holds).
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from .._errors import OutputPathError
from . import folders
from .files import STALE_AFTER_S, umask

__all__ = ["staged_folder", "recover", "Staged", "STAGING_MARKER"]

STAGING_MARKER = ".resnet-deploy-staging"  # in a staging folder until it is complete; locked by its writer


@dataclass(frozen=True)
class Staged:
    path: Path  # the folder to fill; it becomes the target when the ``with`` block ends without an error
    restored: bool  # an old target, left aside by an interrupted replacement, was put back first


def _aside(target: Path) -> Path:
    return target.parent / f".{target.name}.old"  # where a replacement without renameat2 sets the old folder aside


def recover(target: str | Path) -> bool:
    """Put back a folder that a replacement cut short between its renames left aside (``.NAME.old``);
    True when one was. Run it before any check of whether ``target`` exists."""
    target = Path(target)
    try:
        return folders.restore(target, _aside(target))
    except OSError as exc:
        raise OutputPathError(f"could not restore {target} from {_aside(target).name}: {exc.strerror or exc}") from exc


def remove_stale_staging(target: Path) -> list[Path]:
    """Remove the staging folders of ``target`` that killed runs left; return them."""
    removed = []
    for path in target.parent.glob(f".{glob.escape(target.name)}.????????"):
        with contextlib.suppress(OSError):
            if path.is_dir() and not path.is_symlink() and _unlocked(path / STAGING_MARKER):
                folders.remove(path)
                removed.append(path)
    return removed


def _unlocked(marker: Path) -> bool:
    """Whether ``marker`` is one of ours that no live writer holds (and old enough that its writer
    had time to lock it)."""
    if time.time() - os.lstat(marker).st_mtime < STALE_AFTER_S:
        return False
    fd = os.open(marker, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


@contextlib.contextmanager
def staged_folder(target: str | Path, *, replace: bool, shown: str | None = None) -> Iterator[Staged]:
    """Yield a fresh folder beside ``target`` to fill; when the block ends it becomes ``target``
    in one step (:func:`folders.move_into_place`), and on any error nothing at ``target`` changes.

    Args:
        target: the folder to write. Its parent must exist.
        replace: replace an existing ``target``; when False one is refused, also if it appears
            while the block runs.
        shown: how messages name the target (``--output out``); the path by default.
    """
    target = Path(target)
    shown = shown or str(target)
    restored = recover(target)
    if os.path.lexists(target) and not replace:
        raise OutputPathError(f"{shown} already exists; pass --force to replace it")
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise OutputPathError(f"output folder's parent does not exist: {parent}")
    remove_stale_staging(target)
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=parent))
    except OSError as exc:
        raise OutputPathError(f"cannot write in {parent}: {exc.strerror or exc}") from exc
    marker = staging / STAGING_MARKER
    lock = open(marker, "w")  # noqa: SIM115 - held until the folder is complete
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        staging.chmod(0o777 & ~umask())  # mkdtemp makes 0700; a server may run as another user
        yield Staged(staging, restored)
        marker.unlink()
        lock.close()
        if os.path.lexists(target) and not replace:  # created while this ran: never replaced unasked
            raise OutputPathError(f"{shown} already exists; pass --force to replace it")
        folders.move_into_place(staging, target, _aside(target))
    except OSError as exc:
        raise OutputPathError(f"could not write {target}: {exc.strerror or exc}") from exc
    finally:
        lock.close()
        with contextlib.suppress(OSError):  # (if this fails too, the next run's recover() puts it back)
            folders.restore(target, _aside(target))  # interrupted between the fallback's renames: the old folder stays
        folders.remove(staging)  # the unused new folder, or after a swap the old one
