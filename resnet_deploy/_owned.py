"""Temporary folders a run owns, and how a later run removes those of runs that are gone.

A run cut short (SIGKILL, SIGQUIT, a crash) runs no cleanup, and its temporary folder
(``/tmp/resnet-deploy-bench-*``, ``-serve-*``, ``-triton-*``, ``-tune-*``, ...) would stay for
ever. So each folder carries the pid of the process that made it in its :data:`OWNER_MARKER`
file, with its pid namespace; the run removes its own at the end, and the next run of the same
prefix removes those whose process is gone. Nothing else is touched: not a live run's, not
another user's, not another pid namespace's, not a link, not a folder without the marker.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from ._file_kind import open_regular

__all__ = ["OWNER_MARKER", "alive", "die_with_parent", "ours", "owned_folder", "owned_tempdir", "pid_namespace",
           "remove_stale_folders", "remove_tree"]

OWNER_MARKER = ".resnet-deploy-owner"  # holds the pid of the run that made the folder


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists (one of another user's counts); a number no pid can be
    (``/dev/shm/resnet_deploy_99999999999_...``, made by anyone) is no process."""
    if not 0 < pid < 2**31:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def ours(path: Path) -> bool:
    """A file or folder this user made, not a link (``/tmp`` and ``/dev/shm`` are shared)."""
    try:
        info = path.lstat()
    except OSError:
        return False
    return info.st_uid == os.getuid() and not path.is_symlink()


def pid_namespace() -> str:
    """This process's pid namespace, as digits (``4026531836``): a pid means a process only
    within it, so what another namespace marked (a container sharing ``/tmp``) is never judged
    here. ``0`` where there is no such thing to read (not Linux: one namespace)."""
    try:
        link = os.readlink("/proc/self/ns/pid")  # pid:[4026531836]
    except OSError:
        return "0"
    return "".join(c for c in link if c.isdigit()) or "0"


def _marker(path: Path) -> tuple[int, str] | None:
    """A folder's marker as (pid, namespace), or None when it is not one: read no further than a
    marker can be, and only from a regular file (a FIFO would block the command for ever)."""
    try:
        with open_regular(path / OWNER_MARKER) as fh:
            pid, _, namespace = fh.read(64).decode("ascii").partition(" ")
        return int(pid), namespace.strip()
    except (OSError, ValueError):  # missing, not a regular file, not ours to read, not "PID NAMESPACE"
        return None


def remove_stale_folders(prefix: str, parent: Path | None = None) -> list[Path]:
    """Remove the folders ``parent/prefix*`` (the temporary folder by default) whose marker names
    a process that is gone; the folders removed. A folder without a marker is not ours to judge."""
    removed = []
    for path in Path(parent or tempfile.gettempdir()).glob(f"{prefix}*"):
        if not (path.is_dir() and ours(path)):
            continue
        marker = _marker(path)
        if marker is None:
            continue
        pid, namespace = marker
        if namespace in ("", pid_namespace()) and not alive(pid):  # "": a marker that predates namespaces
            remove_tree(path)
            removed.append(path)
    return removed


def remove_tree(path: Path) -> None:
    """Remove the folder ``path`` and everything under it, at any depth: ``shutil.rmtree`` recurses
    once per level, and a tree 3,000 folders deep ended a run in RecursionError (pass 6)."""
    try:
        shutil.rmtree(path, ignore_errors=True)
    except RecursionError:
        subprocess.run(["rm", "-rf", "--", str(path)], check=False, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def owned_folder(prefix: str, parent: Path | None = None) -> Path:
    """A new temporary folder ``prefix*`` marked with this process's pid, after removing those
    of runs that are gone. The caller removes it."""
    remove_stale_folders(prefix, parent)
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    try:
        (folder / OWNER_MARKER).write_text(f"{os.getpid()} {pid_namespace()}")
    except BaseException:  # a folder without its marker would be left for good
        remove_tree(folder)
        raise
    return folder


@contextlib.contextmanager
def owned_tempdir(prefix: str, parent: Path | None = None) -> Iterator[Path]:
    """:func:`owned_folder`, removed at the end of the ``with`` block."""
    folder = owned_folder(prefix, parent)
    try:
        yield folder
    finally:
        remove_tree(folder)


def die_with_parent() -> None:
    """In a child before exec: SIGTERM when the process that started it dies, however it dies
    (SIGKILL, a closed terminal's SIGHUP), so no worker or server outlives its owner (Linux prctl;
    elsewhere nothing)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
