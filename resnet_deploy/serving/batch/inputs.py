"""The images a job reads: INPUT arguments expanded into one sorted list of absolute paths
(and URLs, :mod:`.remote`).

The list is expanded once, when a job starts, and stored in the output folder
(:data:`INPUTS_FILE`); a resumed job reads it back instead of searching again, so it works on
exactly the first run's images even when a folder gained files since. Sorting and removing
duplicates make two runs of the same command list the same images in the same order, and so
the same shards.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from typing import Iterable, Sequence

from ..._errors import InputError
from ...preprocess.images import IMAGE_SUFFIXES
from .remote import check_url, expand_url, is_url

__all__ = ["normalise_specs", "list_inputs", "inputs_bytes", "parse_inputs", "INPUTS_FILE"]

INPUTS_FILE = "_inputs.txt"
_GLOB_CHARS = frozenset("*?[")


def normalise_specs(specs: Sequence[str]) -> tuple[str, ...]:
    """The INPUT arguments as absolute paths (``@`` kept in front of a list file), so that the
    same command run from another folder is recognised as the same job."""
    return tuple("@" + os.path.abspath(s[1:]) if s.startswith("@") else s if is_url(s) else os.path.abspath(s)
                 for s in specs)


def _is_image(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES


def _folder_images(folder: str, *, required: bool = True) -> list[str]:
    """Image files under ``folder``, at any depth (symbolic links to folders are not followed: a
    link to an ancestor would loop). A folder named by the user must hold images; one a pattern
    matched may be empty (``photos/*`` over a tree with an empty subfolder)."""
    found = []
    for root, _dirs, names in os.walk(folder, onerror=_raise):
        found.extend(os.path.join(root, n) for n in names if _is_image(n) and os.path.isfile(os.path.join(root, n)))
    if not found and required:
        raise InputError(f"no images ({', '.join(IMAGE_SUFFIXES)}) found in {folder}")
    return found


def _raise(exc: OSError) -> None:
    raise InputError(f"cannot read folder {exc.filename}: {exc.strerror or exc}") from exc


# An @list is read whole: a regular file of at most this many bytes (10 million paths of 100 bytes).
MAX_LIST_BYTES = 1 << 30


def _list_file(spec: str) -> list[str]:
    """``@list.txt``: one path per line (``\n``, or ``\r\n``), blank lines skipped, relative paths
    taken from the list's folder. Entries are not checked here: a missing one becomes a row saying so.
    Only ``\n`` ends a line: a file name may hold U+2028 or ``\x1c``, which ``splitlines`` would cut."""
    path = spec[1:]
    try:
        # O_NONBLOCK: opening a FIFO to read would wait for a writer; it is refused instead.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise InputError(f"cannot read the list {path}: not a regular file (a FIFO, a device or a folder)")
        with open(fd, "rb") as raw:
            size = os.fstat(raw.fileno()).st_size
            if size > MAX_LIST_BYTES:
                raise InputError(f"the list {path} is {size / 2**30:.1f} GiB; a list may hold at most "
                                 f"{MAX_LIST_BYTES >> 30} GiB of paths (split it into several jobs)")
            text = raw.read(MAX_LIST_BYTES + 1).decode("utf-8-sig")
        lines = [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
        raise InputError(f"cannot read the list {path}: {reason}") from exc
    base = os.path.dirname(path)
    entries = [line if is_url(line) else os.path.join(base, line) for line in lines if line.strip()]
    for entry in entries:
        if is_url(entry):
            check_url(entry)  # a relative file:// or a FIFO as an archive: one line now, not a row per image
    if not entries:
        raise InputError(f"the list {path} names no images")
    return entries


def _glob(pattern: str) -> list[str]:
    """A glob's matches: image files, and the images of matched folders (``**`` recurses)."""
    found: list[str] = []
    for match in _matches(pattern):
        if os.path.islink(match) and os.path.isdir(match):
            continue  # as a folder search, links to folders are not followed: one to an ancestor would loop
        if os.path.isdir(match):
            found.extend(_folder_images(match, required=False))
        elif _is_image(match) and os.path.isfile(match):
            found.append(match)
    if not found:
        raise InputError(f"the pattern {pattern} matches no images")
    return found


def _matches(pattern: str) -> list[str]:
    """The paths ``pattern`` matches. pathlib's ``**`` does not enter symbolic links to folders
    (glob.glob's does: two links to ``.`` listed images without end), so the pattern is split at
    its first wildcard into a folder and a relative pattern for Path.glob."""
    parts = Path(pattern).parts
    first = next(i for i, part in enumerate(parts) if _GLOB_CHARS & set(part))
    base = Path(*parts[:first]) if first else Path(".")
    rest = str(Path(*parts[first:]))
    return [str(base / p.relative_to(base)) if first else str(p) for p in base.glob(rest)]


def _absolute(path: str) -> str:
    """``path`` made absolute. ``..`` is resolved through the file system when it follows a
    symbolic link (``link/../x`` is the link target's parent's ``x``, as ``open`` reads it), and
    textually otherwise, so that a path is listed as given."""
    if is_url(path):
        return path
    if ".." in Path(path).parts:
        return os.path.realpath(path)
    return os.path.abspath(path)


def _expand(spec: str) -> list[str]:
    if spec.startswith("@"):
        return _list_file(spec)
    if is_url(spec):
        return expand_url(spec)
    if os.path.isdir(spec):
        return _folder_images(spec)
    if os.path.isfile(spec):
        return [spec]  # named by the user: taken whatever its suffix
    if _GLOB_CHARS & set(spec):
        return _glob(spec)
    raise InputError(f"input not found: {spec}")


def _checked(path: str) -> str:
    """A path that one line of :data:`INPUTS_FILE` and a Parquet string (UTF-8) can hold."""
    if "\n" in path or "\r" in path:
        raise InputError(f"cannot list a path holding a line break: {path!r}")
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(f"cannot list a path that is not UTF-8: {path.encode('utf-8', 'surrogateescape')!r}") from None
    return path


def list_inputs(specs: Iterable[str]) -> list[str]:
    """Every image the specs name, absolute, sorted, each once; an input that names nothing (a
    missing path, a glob without matches, an unreadable or empty list) raises :class:`InputError`
    before any work."""
    return sorted({_checked(_absolute(p)) for spec in specs for p in _expand(spec)})


def inputs_bytes(paths: Sequence[str]) -> bytes:
    """The stored form of a list: one path per line, UTF-8."""
    return "".join(p + "\n" for p in paths).encode("utf-8")


def parse_inputs(data: bytes) -> tuple[list[str], str]:
    """A stored list and its SHA-256 (the manifest pins the digest)."""
    # split("\n"), not splitlines(): a file name may hold U+2028, U+0085 or \x1c, which splitlines breaks at.
    text = data.decode("utf-8")
    return (text[:-1].split("\n") if text else []), hashlib.sha256(data).hexdigest()
