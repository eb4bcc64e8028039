"""Output paths checked before any work: writable, new unless ``--force``, distinct from every
input and from each other (the same file however it is spelled)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Mapping, Union

from .._errors import OutputPathError

__all__ = ["check_writable", "check_new", "check_distinct", "name_max", "Paths"]

Paths = Union[str, Path, Iterable[Union[str, Path]], None]


def check_writable(path: str | Path) -> Path:
    """Fail early, before any work, when ``path`` cannot be written."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    limit = name_max(folder) if folder.is_dir() else 255
    if len(os.fsencode(path.name)) > limit:
        raise OutputPathError(f"output file name is longer than the {limit} bytes this file system allows: "
                              f"{path.name[:40]}...")
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


def name_max(folder: Path) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


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
            raise OutputPathError(f"{label} {path} and {other_label} {other} are the same file; "
                                  "give each output its own path")
        seen[key] = (label, path)
        for in_label, in_path in ins:
            same = key == _identity(in_path)
            inside = (not same and in_path.is_dir() and _exists(path)
                      and Path(os.path.realpath(in_path)) in Path(os.path.realpath(path)).parents)
            if same or inside:
                where = "is the same file as" if same else "is a file inside"
                raise OutputPathError(f"{label} {path} {where} the input {in_label} {in_path}; "
                                      "refusing to overwrite an input")
    for label, folder in _flatten(output_dirs or {}):
        root = Path(os.path.realpath(folder))
        for in_label, in_path in ins:
            real = Path(os.path.realpath(in_path))
            if real == root or root in real.parents:
                raise OutputPathError(f"the input {in_label} {in_path} lies inside {label} {folder}, "
                                      "which would be replaced")
