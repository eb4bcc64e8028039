"""What a local server's run leaves behind, and how the next run removes it.

A run cut short (SIGKILL, SIGQUIT, a crash) runs no cleanup: its temporary folders
(``/tmp/resnet-deploy-serve-*``, ``/tmp/resnet-deploy-triton-*``) and the Python backend's
shared-memory regions in ``/dev/shm`` stay, and Triton itself leaves regions behind even after a
clean stop. So each thing a run makes carries the pid of the process that made it: a folder in
its :data:`OWNER_MARKER` file, a region in its name (Triton's ``shm-region-prefix-name``). The
run removes its own at the end, and a later run removes those whose process is gone. Nothing
else is touched: not a live run's, not another user's, not a region without our prefix. The
folders are :mod:`resnet_deploy._owned`'s, as every command's temporary folder is.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..._owned import alive, ours, pid_namespace

__all__ = ["SHM_FOLDER", "shm_prefix", "remove_shm", "remove_stale_shm"]

SHM_FOLDER = Path("/dev/shm")
_SHM_NAME = re.compile(r"^resnet_deploy_(\d+)_(\d+)_[0-9a-f]{8}_")  # namespace, pid, run token


def shm_prefix(token: str) -> str:
    """The prefix of the shared-memory regions of this process's run ``token`` (8 hex digits):
    ``resnet_deploy_<pid namespace>_<pid>_<token>_``."""
    if not re.fullmatch(r"[0-9a-f]{8}", token):
        raise ValueError(f"a run token is 8 hex digits, received {token!r}")
    return f"resnet_deploy_{pid_namespace()}_{os.getpid()}_{token}_"


def remove_shm(prefix: str, folder: Path = SHM_FOLDER) -> list[str]:
    """Remove the regions named ``prefix*``; the names removed. A stub that still maps one keeps
    its memory until it exits: only the name goes."""
    removed = []
    if not _SHM_NAME.match(prefix):
        raise ValueError(f"not a prefix of ours: {prefix!r}")
    for entry in _entries(folder):
        if entry.name.startswith(prefix) and ours(Path(entry.path)) and _unlinked(entry.path):
            removed.append(entry.name)
    return removed


def remove_stale_shm(folder: Path = SHM_FOLDER) -> list[str]:
    """Remove our regions whose run is gone; the names removed."""
    removed = []
    for entry in _entries(folder):
        match = _SHM_NAME.match(entry.name)
        # ours first: a name anyone may make is judged only when it is this user's file
        if (match and ours(Path(entry.path)) and match[1] == pid_namespace() and not alive(int(match[2]))
                and _unlinked(entry.path)):
            removed.append(entry.name)
    return removed


def _entries(folder: Path) -> list[os.DirEntry[str]]:
    try:
        return list(os.scandir(folder))
    except OSError:  # no /dev/shm (not Linux): nothing to remove
        return []


def _unlinked(path: str) -> bool:
    """Whether the file at ``path`` was removed; one that cannot be (a folder of that name, gone
    meanwhile) stops nothing: the scan goes on to the next (it stopped the whole scan: pass 6)."""
    try:
        os.unlink(path)
    except OSError:
        return False
    return True
