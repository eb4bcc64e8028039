"""What a benchmark run is asked to do, and the checks that refuse nonsense before any work."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .._errors import InputError, OutputPathError
from ..runtime import cpu_count, resolve_provider

__all__ = ["BenchOptions", "validate", "clear_cache", "make_cache_entry", "CACHE_MARKER", "TRT_CACHE_KEY", "MODES", "PRECISIONS",
           "LIMITS"]

MODES = ("latency", "throughput")
PRECISIONS = ("fp32", "bf16", "fp16", "int8")
# Caps that catch a typo (an extra zero, a unit mix-up) before it keeps a machine busy for a day.
LIMITS = {
    "duration": 3600.0,  # seconds of timed runs per engine and batch size
    "iterations": 10**6,
    "warmup": 10**4,
    "rounds": 100,
    "batch_size": 4096,
}
DEFAULT_ROUNDS = 5


@dataclass
class BenchOptions:
    """Options of :func:`resnet_deploy.bench.run_benchmark`.

    Either ``model`` (a registered name: the toolkit exports, optimizes and quantizes it) or
    ``files`` (ONNX files measured as they are on each of ``providers``; default ``cpu``).
    """

    model: str = "resnet50"
    files: Sequence[str | Path] = ()
    weights: str | Path | None = None
    batch_sizes: Sequence[int] = (1,)
    providers: Sequence[str] | None = None  # None: every available provider (files: cpu)
    precisions: Sequence[str] | None = None  # None: every precision
    threads: int | None = None
    duration: float | None = 3.0
    iterations: int | None = None
    warmup: int = 5
    min_iterations: int = 10
    rounds: int | None = None  # interleaved rounds; None: 5 (at most --iterations)
    mode: str = "latency"
    concurrency: Sequence[int] | None = None  # throughput mode; None: 1, 2, 4
    compile: bool = False
    peak: bool = False
    eval_data: str | Path | None = None
    calibration: str | Path | None = None
    cache_dir: str | Path | None = None
    engines: Sequence[str] | None = None  # restrict to these engine names
    urls: Sequence[str] = ()  # Triton servers of the first file's model (http://, grpc:// or HOST:PORT)
    served_model: str | None = None  # its name there; None: the first file's stem, as `triton` names it

    def cache_folder(self) -> Path:
        """Where exported models (and TensorRT engines) are cached."""
        if self.cache_dir:
            return Path(self.cache_dir)
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        return Path(base) / "resnet-deploy" / "bench"

    def effective_rounds(self) -> int:
        if self.rounds is not None:
            return self.rounds
        return min(DEFAULT_ROUNDS, self.iterations) if self.iterations else DEFAULT_ROUNDS

    def concurrency_levels(self) -> list[int]:
        if self.mode == "latency":
            return [1]
        return list(self.concurrency or (1, 2, 4))


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _bounded(name: str, value: float | int, low: float, high: float, *, flag: str | None = None) -> None:
    flag = flag or f"--{name.replace('_', '-')}"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError(f"{flag} must be a finite number, received {value!r}")
    if not low <= value <= high:
        raise InputError(f"{flag} must be between {_fmt(low)} and {_fmt(high)}, received {_fmt(value)}")


def validate(options: BenchOptions) -> list[str] | None:
    """Refuse non-finite or absurd settings with one clear message; return the providers resolved
    (by :func:`resnet_deploy.runtime.resolve_provider`, which also refuses unknown or missing ones),
    or None for every available provider."""
    cores = cpu_count()
    if not options.batch_sizes:
        raise InputError("no batch size given")
    for b in options.batch_sizes:
        if b < 1:
            raise InputError(f"batch sizes must be at least 1, received {b}")
        _bounded("batch_size", b, 1, LIMITS["batch_size"], flag="--batch-size")
    if options.iterations is not None:
        _bounded("iterations", options.iterations, 1, LIMITS["iterations"])
    elif options.duration is None:
        raise InputError("give --duration or --iterations")
    else:
        _bounded("duration", options.duration, 0, LIMITS["duration"])
        if options.duration <= 0:
            raise InputError(f"--duration must be positive, received {_fmt(options.duration)}")
    _bounded("warmup", options.warmup, 0, LIMITS["warmup"])
    if options.threads is not None:
        _bounded("threads", options.threads, 1, 4 * cores, flag=f"--threads (this process may use {cores} cores)")
    rounds = options.effective_rounds()
    _bounded("rounds", rounds, 1, LIMITS["rounds"])
    if options.iterations is not None and rounds > options.iterations:
        raise InputError(f"--rounds ({rounds}) cannot exceed --iterations ({options.iterations}): each round needs a run")
    if options.mode not in MODES:
        raise InputError(f"unknown mode {options.mode!r}; expected {' or '.join(MODES)}")
    if options.concurrency is not None and options.mode != "throughput":
        raise InputError("--concurrency applies to --mode throughput")
    levels = options.concurrency_levels()
    if not levels:
        raise InputError("no concurrency level given")
    for c in levels:
        _bounded("concurrency", c, 1, max(16, 4 * cores))
    for p in options.precisions or ():
        if p not in PRECISIONS:
            raise InputError(f"unknown precision {p!r}; expected one of {', '.join(PRECISIONS)}")
    if options.files:
        for flag, value in (("--calibration", options.calibration), ("--precision", options.precisions),
                            ("--engines", options.engines), ("--compile", options.compile)):
            if value:
                raise InputError(f"{flag} applies to a model of the zoo (--depth/--model); ONNX files are measured as they are")
    else:
        from .. import get_model_spec  # the zoo needs torch; a file benchmark does not

        get_model_spec(options.model)
    _check_served(options)
    providers = options.providers or (["cpu"] if options.files else None)
    return list(dict.fromkeys(resolve_provider(p) for p in providers)) if providers is not None else None


def _check_served(options: BenchOptions) -> None:
    """``--url``: the served model is measured beside the file it was made from."""
    if not options.urls:
        if options.served_model is not None:
            raise InputError("a served model's name applies with --url")
        return
    if not options.files:
        raise InputError("--url measures a served model beside the ONNX file it serves: give that file too")
    from .served import parse_url

    for url in options.urls:
        parse_url(url)
    if options.served_model is not None and not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*", options.served_model):
        raise InputError(f"invalid served model name {options.served_model!r}")


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
