"""The benchmark's cache folder: the zoo's exported model files and TensorRT's engines, each
entry marked when it is made, and removed only when the benchmark made it."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path

from .._errors import InputError, OutputPathError

__all__ = ["make_cache_entry", "cache_usage", "clear_cache", "CACHE_MARKER", "TRT_CACHE_KEY"]

# What the benchmark creates in its cache folder: <model>-<16 hex digits of the cache key> per
# model (prepare_artifacts) and tensorrt/ (the TensorRT EP's engines, profiles and timing
# cache). Each is marked when it is made: a marker file holding its key, written before the
# folder takes its name (the folder is built under a temporary name and renamed), so an entry
# never exists unmarked. clear_cache removes only folders with a valid marker, never judging
# by names: a user's own `tensorrt/` (an SDK download) or `resnet50-00000000000000aa/` beside a
# --cache-dir is kept. As a second guard, a marked entry holding anything the benchmark does
# not write there (a user's file, a link, a folder) is kept too.
CACHE_MARKER = ".resnet-deploy-cache-entry"
MARKER_FORMAT = "resnet-deploy bench cache entry"
TRT_CACHE_KEY = "tensorrt"
_TEMPORARY = r"^\..+\.tmp$"  # an atomic write cut short by SIGKILL
_ENTRY_FILES = re.compile(r"^(export|portable|cpu|cuda|int8|fp16|int8_static_b[0-9]+)\.onnx$|" + _TEMPORARY)
_TRT_FILES = re.compile(r"^TensorrtExecutionProvider.*$|^.+\.(engine|profile|timing)$|" + _TEMPORARY)


def _marker_text(key: str) -> str:
    return json.dumps({"format": MARKER_FORMAT, "key": key}, sort_keys=True) + "\n"


def _marked_key(folder: Path) -> str | None:
    """The key in ``folder``'s marker, or None when it has no valid one (a link, no marker, a
    marker that is a link or not ours)."""
    marker = folder / CACHE_MARKER
    try:
        if folder.is_symlink() or not folder.is_dir() or marker.is_symlink() or not marker.is_file():
            return None
        if marker.stat().st_size > 4096:
            return None
        data = json.loads(marker.read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != MARKER_FORMAT or not isinstance(data.get("key"), str):
        return None
    return data["key"]


def make_cache_entry(entry: str | Path, key: str) -> Path:
    """The cache entry ``entry`` for ``key``: used when it carries our marker for that key,
    created marked when missing, refused when something else has its name."""
    entry = Path(entry)
    if _marked_key(entry) == key:
        return entry
    if entry.exists() or entry.is_symlink():
        raise InputError(f"{entry} is in the benchmark's cache folder but the benchmark did not make it (it has no "
                         "cache marker); move it away or choose another --cache-dir")
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", suffix=".tmp", dir=entry.parent))
    except OSError as exc:
        raise OutputPathError(f"cannot create the cache entry {entry}: {exc.strerror or exc}") from exc
    try:
        (staging / CACHE_MARKER).write_text(_marker_text(key))
        mask = os.umask(0)
        os.umask(mask)
        staging.chmod(0o777 & ~mask)  # mkdtemp makes 0700; a cache entry gets a plain mkdir's mode
        os.rename(staging, entry)
    except OSError as exc:
        if _marked_key(entry) != key:  # another run made the same entry at the same moment: use it
            raise OutputPathError(f"cannot create the cache entry {entry}: {exc.strerror or exc}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return entry


def _is_cache_entry(path: Path) -> bool:
    """``path`` is a folder the benchmark made: it holds our marker with the key its name was
    made from, and nothing the benchmark does not write there."""
    key = _marked_key(path)
    if key is None:
        return False
    if path.name == TRT_CACHE_KEY:
        files = _TRT_FILES if key == TRT_CACHE_KEY else None
    else:
        files = _ENTRY_FILES if path.name.endswith(f"-{key}") and re.fullmatch(r"[0-9a-f]{16}", key) else None
    if files is None:
        return False
    return all(f.name == CACHE_MARKER or (f.is_file() and not f.is_symlink() and files.match(f.name))
               for f in path.iterdir())


def cache_usage(folder: str | Path) -> tuple[int, int]:
    """(entries, bytes) the benchmark has cached in ``folder``: what ``clear_cache`` would remove."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0, 0
    entries = [p for p in folder.iterdir() if _is_cache_entry(p)]
    return len(entries), sum(f.stat().st_size for p in entries for f in p.rglob("*") if f.is_file())


def clear_cache(folder: str | Path) -> tuple[int, int]:
    """Remove the entries the benchmark cached in ``folder`` and nothing else there (a
    ``--cache-dir`` may be a folder of the user's); return (entries removed, bytes freed)."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0, 0
    entries = [p for p in folder.iterdir() if _is_cache_entry(p)]
    freed = sum(f.stat().st_size for p in entries for f in p.iterdir())
    for p in entries:
        shutil.rmtree(p)
    for p in folder.iterdir():  # an entry being made when its run was killed: a marker and nothing else
        if _marked_key(p) is not None and [f.name for f in p.iterdir()] == [CACHE_MARKER] and p.name.startswith("."):
            shutil.rmtree(p)
    return len(entries), freed
