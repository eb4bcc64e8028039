"""Atomic file writes: a temporary file in the target folder, fsync, then one step into place.

A failed or interrupted write (an exception, Ctrl-C, SIGTERM turned into KeyboardInterrupt by
the CLI, a full disk) removes its temporary file and leaves any existing target untouched.
That last step either replaces the target (``replace=True``, the CLI's ``--force``) or refuses
an existing one atomically (``replace=False``): a file created at the target while the work
ran, or by a second run writing the same path, is never overwritten. A temporary file left by
a run killed with SIGKILL (which runs no cleanup) is removed by the next write of that target.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import re
import stat
import tempfile
import time
from pathlib import Path
from typing import Iterator

from .._errors import OutputPathError
from .paths import check_writable, name_max

__all__ = ["atomic_write_bytes", "atomic_path", "remove_stale_temporaries", "STALE_AFTER_S"]


def _temp_prefix(path: Path) -> str:
    """``.NAME.`` for the temporary file, shortened so that mkstemp's random part and ``.tmp``
    fit in the file system's name limit (a valid 250-byte name must stay writable)."""
    room = name_max(path.parent if str(path.parent) else Path(".")) - 2 - 8 - 4  # dots, random part, .tmp
    name = os.fsencode(path.name)[: max(room, 1)].decode("utf-8", "ignore")  # never half a character
    return f".{name}."


# A temporary file is ours and stale when it has exactly our name pattern for the target, is a
# regular file of this user, and no live process holds its lock (every writer holds an flock on
# its temporary file until the end; the kernel drops it when the process dies, SIGKILL included).
# The age is a margin for the instant between creating the file and locking it.
STALE_AFTER_S = 2.0
_RANDOM = r"[a-z0-9_]{8}"  # tempfile.mkstemp's random part
RENAME_NOREPLACE = 1  # linux/fs.h


@contextlib.contextmanager
def atomic_path(path: str | Path, *, replace: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it becomes ``path`` in one step.

    Args:
        path: the target.
        replace: replace an existing target (``os.replace``). When False, an existing target is
            refused at the last step with :class:`OutputPathError`, atomically: the temporary
            file is hard-linked to the target (``link()`` fails when the name exists), or on a
            file system without hard links renamed with ``renameat2(RENAME_NOREPLACE)``.
    """
    path = check_writable(path)
    remove_stale_temporaries(path)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent or ".")
    except OSError as exc:
        raise OutputPathError(f"could not write {path}: {exc.strerror or exc}") from exc
    tmp = Path(tmp_name)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # held until we are done: a live writer's file is never stale
        # mkstemp creates 0600; give the result the mode a plain open() would (or the old file's).
        os.chmod(tmp, path.stat().st_mode & 0o7777 if path.exists() else 0o666 & ~umask())
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        if replace:
            os.replace(tmp, path)
        else:
            _place_new(tmp, path)
    except OSError as exc:
        raise OutputPathError(f"could not write {path}: {exc.strerror or exc}") from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        os.close(fd)


def _place_new(tmp: Path, path: Path) -> None:
    """Give ``tmp`` the name ``path`` unless that name exists, in one atomic step."""
    try:
        os.link(tmp, path, follow_symlinks=False)
        return
    except FileExistsError:
        raise _exists_now(path) from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK, errno.ENOSYS):
            raise
    _rename_noreplace(tmp, path)  # no hard links here (FAT, some FUSE file systems)


def _rename_noreplace(tmp: Path, path: Path) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    at_fdcwd = -100
    if renameat2 is not None:
        if renameat2(at_fdcwd, os.fsencode(tmp), at_fdcwd, os.fsencode(path), RENAME_NOREPLACE) == 0:
            return
        code = ctypes.get_errno()
        if code == errno.EEXIST:
            raise _exists_now(path)
        if code not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            raise OSError(code, os.strerror(code), str(path))
    raise OutputPathError(f"could not write {path}: its file system can neither hard-link nor rename without "
                          "replacing, so an existing file could not be refused safely; pass --force to replace it")


def _exists_now(path: Path) -> OutputPathError:
    # The CLI refused an existing output before any work; reaching this, the file appeared since.
    return OutputPathError(f"{path} already exists (it appeared while this command ran); it was not replaced: "
                           "pass --force to replace it")


def remove_stale_temporaries(path: str | Path) -> list[Path]:
    """Remove the temporary files of writes to ``path`` that a killed run left behind; return them.

    Only ours: the exact name pattern of :func:`atomic_path` for this target, a regular file (not
    a link) of this user, older than :data:`STALE_AFTER_S`, and not locked by a live writer.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    pattern = re.compile(re.escape(_temp_prefix(path)) + _RANDOM + r"\.tmp")
    removed = []
    try:
        names = [e.name for e in os.scandir(folder) if pattern.fullmatch(e.name)]
    except OSError:
        return removed
    for name in names:
        candidate = folder / name
        with contextlib.suppress(OSError):
            if _stale(candidate):
                removed.append(candidate)
    return removed


def _stale(candidate: Path) -> bool:
    """Unlink ``candidate`` when it is an unlocked, old enough regular file of ours."""
    st = os.lstat(candidate)
    if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid() or time.time() - st.st_mtime < STALE_AFTER_S:
        return False
    fd = os.open(candidate, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # a live writer holds it
        if os.fstat(fd).st_ino != os.lstat(candidate).st_ino:
            return False  # replaced under us: not the file we checked
        os.unlink(candidate)
        return True
    finally:
        os.close(fd)


def umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes, *, replace: bool = True) -> None:
    """Write ``data`` to ``path`` atomically; with ``replace=False`` an existing file is refused."""
    with atomic_path(path, replace=replace) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
