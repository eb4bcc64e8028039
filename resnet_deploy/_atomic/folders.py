"""Atomic replacement of a folder: the path always holds a complete folder, the old or the new one.

``move_into_place`` swaps a staged folder with the one in place in one step (Linux
``renameat2(RENAME_EXCHANGE)``). Where that call is missing the old folder is renamed aside
first (``old``), and one left aside by an interruption is put back by :func:`restore`.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
import sys
from pathlib import Path

__all__ = ["move_into_place", "restore", "remove", "exchange"]

_AT_FDCWD, _RENAME_EXCHANGE = -100, 2  # <fcntl.h>, <linux/fs.h>


def exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux ``renameat2`` with ``RENAME_EXCHANGE``, glibc 2.28+);
    False where the system or the file system does not offer it."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    renameat2.restype = ctypes.c_int
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def remove(path: Path) -> None:
    """Remove what ``path`` is, whatever it is: the entry a swap set aside may be a folder, or a
    file or a symlink that stood where the entry goes (never followed)."""
    with contextlib.suppress(OSError):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        elif os.path.lexists(path):
            path.unlink()


def restore(target: Path, old: Path) -> bool:
    """Put back the entry a replacement renamed aside, when nothing took its place."""
    if os.path.lexists(target) or not old.is_dir():
        return False
    old.rename(target)
    return True


def move_into_place(staging: Path, target: Path, old: Path) -> None:
    """``staging`` becomes ``target``; an existing ``target`` ends up at ``staging``: swapped in
    one step, or where that is not possible by way of ``old`` (three renames)."""
    if not os.path.lexists(target):
        staging.rename(target)
        return
    if os.path.lexists(old):
        remove(old)  # a stale copy beside a complete entry (a removal cut short); a file or link too
    if exchange(staging, target):
        return
    target.rename(old)
    staging.rename(target)
    old.rename(staging)  # removed from there by the caller: `old` only ever holds a complete entry
