"""What a path we are asked to read is, and opening it without waiting on it.

A name in a list can be anything on the file system. A FIFO opened to read waits for a writer (for
ever, if none comes), a device reads without end, and a socket cannot be opened at all; each is named
for what it is rather than reported missing. The check is made on the open descriptor too
(``O_NONBLOCK``, then ``fstat``), so a FIFO put in place between the check and the open still cannot
block the reader.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

__all__ = ["file_kind", "NotRegularFile", "open_regular"]

_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def file_kind(mode: int) -> str | None:
    """None for a regular file, else what ``mode`` (an ``st_mode``) says the file is: "a FIFO", ..."""
    if stat.S_ISREG(mode):
        return None
    return next((name for test, name in _KINDS if test(mode)), "not a file")


class NotRegularFile(OSError):
    """A path that exists but is not a regular file; ``kind`` says what it is ("a FIFO")."""

    def __init__(self, path: str | Path, kind: str) -> None:
        super().__init__(f"not a regular file ({kind}): {path}")
        self.kind = kind


def open_regular(path: str | Path) -> BinaryIO:
    """``path`` opened to read, or :class:`NotRegularFile` (an ``OSError``, as a missing file's
    ``FileNotFoundError``) for anything but a regular file. Symbolic links are followed."""
    kind = file_kind(os.stat(path).st_mode)  # before opening: a socket cannot be opened, a FIFO would block
    if kind is not None:
        raise NotRegularFile(path, kind)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        kind = file_kind(os.fstat(fd).st_mode)  # the file opened is the one checked, whatever replaced it since
        if kind is not None:
            raise NotRegularFile(path, kind)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
