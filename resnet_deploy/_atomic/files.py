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
from typing import Iterable, Iterator, Mapping, Union

from .._errors import OutputPathError

__all__ = ["atomic_write_bytes", "atomic_path", "check_writable", "check_distinct", "check_new", "remove_stale_temporaries"]

Paths = Union[str, Path, Iterable[Union[str, Path]], None]


def check_writable(path: str | Path) -> Path:
    """Fail early, before any work, when ``path`` cannot be written."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    limit = _name_max(folder) if folder.is_dir() else 255
    if len(os.fsencode(path.name)) > limit:
        raise OutputPathError(f"output file name is longer than the {limit} bytes this file system allows: {path.name[:40]}...")
    if path.is_dir():
        raise OutputPathError(f"output path is a folder: {path}")
    if not folder.is_dir():
        raise OutputPathError(f"output folder does not exist: {folder}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputPathError(f"output folder is not writable: {folder}")
    if path.exists() and not path.is_file():
        # A FIFO would be replaced by a regular file, a device (/dev/null as root) by our output.
        raise OutputPathError(f"output path is not a regular file (a FIFO, a device or a socket): {path}")
    if path.exists() and not os.access(path, os.W_OK):
        raise OutputPathError(f"output file is not writable: {path}")
    return path


def check_new(outputs: Mapping[str, Paths], *, force: bool) -> None:
    """The CLI's one overwrite policy: an output that already exists is replaced only with
    ``--force`` (and then atomically, so a failure still leaves the old file)."""
    if force:
        return
    for label, path in _flatten(outputs):
        if _exists(path) and path.is_file():  # folders, FIFOs, devices, bad names: check_writable names them
            raise OutputPathError(f"{label} {path} already exists; pass --force to replace it")


def _name_max(folder: Path) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


def _temp_prefix(path: Path) -> str:
    """``.NAME.`` for the temporary file, shortened so that mkstemp's random part and ``.tmp``
    fit in the file system's name limit (a valid 250-byte name must stay writable)."""
    room = _name_max(path.parent if str(path.parent) else Path(".")) - 2 - 8 - 4  # dots, random part, .tmp
    name = os.fsencode(path.name)[: max(room, 1)].decode("utf-8", "ignore")  # never half a character
    return f".{name}."


def _identity(path: Path) -> tuple[int, int] | str:
    """What makes two paths one file: the inode when it exists (hard links, symlinks, ``..``),
    else the resolved path (two spellings of a file still to be written)."""
    try:
        st = os.stat(path)
        return (st.st_dev, st.st_ino)
    except OSError:
        return os.path.realpath(path)


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # a name too long, say: check_writable reports it
        return False


def _flatten(paths: Mapping[str, Paths]) -> list[tuple[str, Path]]:
    out = []
    for label, value in paths.items():
        if value is None:
            continue
        for p in [value] if isinstance(value, (str, Path)) else value:
            out.append((label, Path(p)))
    return out


def check_distinct(
    outputs: Mapping[str, Paths], inputs: Mapping[str, Paths], *, output_dirs: Mapping[str, Paths] | None = None
) -> None:
    """Refuse, before any work, an output that would overwrite an input or another output.

    Identity is the file itself, not its spelling: the same inode (a hard link, a symlink,
    ``a/../b``) or, for a file still to be written, the same resolved path. An output inside an
    input folder is refused when a file of that name is already there (it would replace one of
    the inputs). ``output_dirs`` are folders a command replaces as a whole (a Triton entry):
    no input may lie inside one.

    Args:
        outputs: label (how the user named it, e.g. ``--report``) -> path or paths.
        inputs: label -> path or paths (files or folders).
        output_dirs: label -> folders that are replaced as a whole.
    """
    outs, ins = _flatten(outputs), _flatten(inputs)
    seen: dict[tuple[int, int] | str, tuple[str, Path]] = {}
    for label, path in outs:
        key = _identity(path)
        if key in seen:
            other_label, other = seen[key]
            raise OutputPathError(f"{label} {path} and {other_label} {other} are the same file; give each output its own path")
        seen[key] = (label, path)
        for in_label, in_path in ins:
            same = key == _identity(in_path)
            inside = (not same and in_path.is_dir() and _exists(path)
                      and Path(os.path.realpath(in_path)) in Path(os.path.realpath(path)).parents)
            if same or inside:
                where = "is the same file as" if same else "is a file inside"
                raise OutputPathError(f"{label} {path} {where} the input {in_label} {in_path}; refusing to overwrite an input")
    for label, folder in _flatten(output_dirs or {}):
        root = Path(os.path.realpath(folder))
        for in_label, in_path in ins:
            real = Path(os.path.realpath(in_path))
            if real == root or root in real.parents:
                raise OutputPathError(f"the input {in_label} {in_path} lies inside {label} {folder}, which would be replaced")


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
        os.chmod(tmp, path.stat().st_mode & 0o7777 if path.exists() else 0o666 & ~_umask())
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


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes, *, replace: bool = True) -> None:
    """Write ``data`` to ``path`` atomically; with ``replace=False`` an existing file is refused."""
    with atomic_path(path, replace=replace) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
