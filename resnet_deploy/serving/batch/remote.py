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

import posixpath
import re
from typing import Any

from PIL import Image

from ..._errors import InputError, first_line
from ...preprocess.images import IMAGE_SUFFIXES, decode_file, load_image

__all__ = ["is_url", "expand_url", "open_image"]

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
_GLOB_CHARS = frozenset("*?[")


def is_url(spec: str) -> bool:
    """Whether ``spec`` is a URL (``scheme://...``) rather than a path."""
    return bool(_URL.match(spec))


def _filesystem(url: str) -> tuple[Any, str]:
    """fsspec's file system for ``url`` and the path within it, or one line saying what is missing."""
    try:
        import fsspec
    except ImportError:
        raise InputError(f"reading {url} needs fsspec and its file system's package: "
                         "pip install fsspec (and s3fs for s3://, gcsfs for gs://)") from None
    try:
        return fsspec.core.url_to_fs(url)
    except (ImportError, ValueError, OSError) as exc:  # an unknown protocol, its package missing, a missing archive
        raise InputError(f"cannot read {url}: {first_line(exc)}") from None


def _is_image(path: str) -> bool:
    return posixpath.splitext(path)[1].lower() in IMAGE_SUFFIXES  # fsspec paths use "/" on every system


def _local(fs: Any, url: str) -> bool:
    protocols = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    return "file" in protocols and "::" not in url


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
    except (OSError, ValueError) as exc:  # the store refused the listing (permissions, network)
        raise InputError(f"cannot list {spec}: {first_line(exc)}") from None
    return [fs.unstrip_protocol(p) + chain + rest for p in found]


def _images(fs: Any, folder: str) -> list[str]:
    return [p for p in fs.find(folder) if _is_image(p)]


def open_image(url: str) -> Image.Image:
    """The image at ``url``, upright and 8-bit RGB, or :class:`InputError` naming the URL."""
    fs, path = _filesystem(url)
    if _local(fs, url):
        return load_image(path)
    try:
        fh = fs.open(path, "rb")
    except FileNotFoundError:
        raise InputError(f"image not found: {url}") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"not a readable image: {url} ({first_line(exc, 120)})") from None
    with fh:
        return decode_file(fh, url)
