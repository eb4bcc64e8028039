"""Inputs behind an fsspec URL: ``s3://bucket/photos/``, ``gs://...``, ``zip://*.jpg::file:///a.zip``.

A job's images may live where no node mounts them. An INPUT (or a line of an ``@list``) written
as a URL is listed and read through fsspec, with the package of its file system (``s3fs`` for
``s3://``, ``gcsfs`` for ``gs://``) installed where the job runs: the driver lists, each decode
worker or Ray task reads. A folder URL is searched recursively for images, a URL with wildcards
is a pattern, as for paths. The rows name each image by its full URL, which is also what the job
folder's input list stores, so a resumed job reads the same objects.

PIL reads an image through fsspec's buffered file, so only the bytes it decodes are fetched; an
image's refusals (not found, unreadable, too large) are its row, as for a local file. ``file://``
URLs are read as the local paths they name (a FIFO is refused, not waited on).
"""

from __future__ import annotations

import functools
import os
import posixpath
import re
from typing import Any

from PIL import Image

from ..._errors import InputError, first_line
from ..._file_kind import file_kind
from ...preprocess.images import IMAGE_SUFFIXES, decode_file, load_image

__all__ = ["is_url", "check_url", "expand_url", "open_image"]

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
_GLOB_CHARS = frozenset("*?[")


def is_url(spec: str) -> bool:
    """Whether ``spec`` is a URL (``scheme://...``) rather than a path."""
    return bool(_URL.match(spec))


def check_url(url: str) -> None:
    """Refuse, in one line, what no run could read the same way twice or at all: a relative
    ``file://`` path (it would follow the working folder), and a local file in a chain that is
    not a regular file (``zip://x::file:///dev/zero`` read without end, a FIFO waited for ever)."""
    if "\n" in url or "\r" in url:
        raise InputError(f"cannot list a URL holding a line break: {url!r}")
    for i, part in enumerate(url.split("::")):
        path = _local_path(part)
        if path is None:
            continue
        if not path.startswith("/"):
            raise InputError(f"{url}: a local file in a URL is named by its absolute path (file:///...); write a "
                             "relative path without a URL")
        if i > 0 and (problem := _not_a_file(path)) is not None:  # an archive the chain reads through
            raise InputError(f"cannot read {url}: {path} {problem}")


def _local_path(part: str) -> str | None:
    """The local path one link of a URL chain names, spelled as fsspec reads it (``file:///x``,
    ``file:/x``, ``local://x``, a bare ``/x``), or None for another file system's link."""
    try:
        import fsspec
    except ImportError:  # opening it says what to install
        return None
    if part.lower() in fsspec.available_protocols():  # a bare protocol link: "simplecache::..."
        return None
    protocol, path = fsspec.core.split_protocol(part)
    if protocol is None:
        for prefix in ("file:", "local:"):
            if part.lower().startswith(prefix):
                return part[len(prefix):]
        return part
    return path if protocol.lower() in ("file", "local") else None


@functools.lru_cache(maxsize=64)
def _not_a_file(path: str) -> str | None:
    """None for a regular file, else what is wrong with it (asked once per path: an @list of a
    million URLs into one archive stats it once)."""
    try:
        kind = file_kind(os.stat(path).st_mode)
    except OSError as exc:
        return f"cannot be read: {exc.strerror or exc}"
    return None if kind is None else f"is {kind}, not a file"


def _filesystem(url: str) -> tuple[Any, str]:
    """fsspec's file system for ``url`` and the path within it, or one line saying what is missing."""
    check_url(url)
    head, chain, rest = url.partition("::")
    if chain:  # the outer file system (an archive's) is opened once per process, not once per image
        protocol = head.split("://", 1)[0]
        try:
            fs = _chained(protocol, rest)
        except InputError as exc:  # it names the chain it opened: name the user's URL
            raise InputError(str(exc).replace(f"{protocol}://::{rest}", url, 1)) from None
        return fs, fs._strip_protocol(head)
    return _open_filesystem(url)


@functools.lru_cache(maxsize=8)
def _chained(protocol: str, rest: str) -> Any:
    """The file system ``protocol://...::rest`` reads through: a zip archive's table of contents
    is read once (each image reopening it made a 5,000-photo archive 100x slower than a folder)."""
    return _open_filesystem(f"{protocol}://::{rest}")[0]


def _open_filesystem(url: str) -> tuple[Any, str]:
    try:
        import fsspec
    except ImportError:
        raise InputError(f"reading {url} needs fsspec and its file system's package: "
                         "pip install fsspec (and s3fs for s3://, gcsfs for gs://)") from None
    try:
        return fsspec.core.url_to_fs(url)
    except Exception as exc:  # noqa: BLE001 - an unknown protocol, its package missing, an archive that is not one
        raise InputError(f"cannot read {url}: {type(exc).__name__}: {first_line(exc)}") from None


def _is_image(path: str) -> bool:
    return posixpath.splitext(path)[1].lower() in IMAGE_SUFFIXES  # fsspec paths use "/" on every system


def _local(url: str) -> bool:
    """Whether ``url`` names a local file directly (no archive or cache in between)."""
    return "::" not in url and _local_path(url) is not None


def expand_url(spec: str) -> list[str]:
    """The image URLs ``spec`` names: itself for an object, a folder's images at any depth, or a
    pattern's matches (the images of matched folders too). Nothing found is one line."""
    fs, path = _filesystem(spec)
    _, chain, rest = spec.partition("::")  # a chained URL keeps its outer file systems
    try:
        if _GLOB_CHARS & set(path):
            found = []
            for match in sorted(fs.glob(path)):
                found += _images(fs, match) if fs.isdir(match) else [match] if _is_image(match) else []
            if not found:
                raise InputError(f"the pattern {spec} matches no images")
        elif fs.isdir(path):
            found = _images(fs, path)
            if not found:
                raise InputError(f"no images ({', '.join(IMAGE_SUFFIXES)}) found in {spec}")
        elif fs.isfile(path):
            return [spec]  # named by the user: taken whatever its suffix, as a local file is
        else:
            raise InputError(f"input not found: {spec}")
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - the store refused the listing (permissions, network, a broken archive)
        raise InputError(f"cannot list {spec}: {type(exc).__name__}: {first_line(exc)}") from None
    return [fs.unstrip_protocol(p) + chain + rest for p in found]


def _images(fs: Any, folder: str) -> list[str]:
    return [p for p in fs.find(folder) if _is_image(p)]


def open_image(url: str) -> Image.Image:
    """The image at ``url``, upright and 8-bit RGB, or :class:`InputError` naming the URL."""
    fs, path = _filesystem(url)
    if _local(url):
        return load_image(path)
    try:
        fh = fs.open(path, "rb")
    except FileNotFoundError:
        raise InputError(f"image not found: {url}") from None
    except Exception as exc:  # noqa: BLE001 - whatever the store says: that image's row
        raise InputError(f"not a readable image: {url} ({type(exc).__name__}: {first_line(exc, 120)})") from None
    with fh:
        return decode_file(fh, url)
