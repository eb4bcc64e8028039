"""What a Triton entry is asked to be (:class:`TritonOptions`), what was written
(:class:`TritonEntry`), and the bounds that refuse nonsense before any work."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path


from ..._errors import InputError
from ..._names import TRITON_MODEL_NAME

__all__ = ["TritonOptions", "TritonEntry", "validate", "request_bytes", "TRITON_PROVIDERS", "TRITON_BACKENDS",
           "DEFAULT_MAX_BATCH_SIZE", "MAX_NAME_BYTES", "NAME", "DEFAULT_MAX_REQUEST_BYTES", "entry_name",
           "MAX_THREADS", "MAX_INSTANCES"]

TRITON_PROVIDERS = ("cpu", "cuda", "tensorrt", "openvino")
TRITON_BACKENDS = ("onnxruntime", "python")
# Bounds of the numbers we write into config.pbtxt: beyond them Triton refuses the config (int32
# fields) or the entry is a mistake (a batch no GPU holds, an instance count no machine runs, a
# queue delay of more than a minute).
DEFAULT_MAX_BATCH_SIZE = 32  # for a dynamic batch when none is given; a fixed batch gets 0
MAX_BATCH_SIZE = 65536
# Each instance is a session of its own (on the Python backend a stub process too): 256 of
# ResNet-20 would hold about 24 GB. 64 is more than any layout tune measures on a 64-core machine
# (tune lays out at most this many), and a fixed bound writes the same entry on every machine.
MAX_INSTANCES = 64
MAX_THREADS = 1024
MAX_QUEUE_DELAY_US = 60_000_000
# A Python-backend entry refuses a request above this many bytes before touching its data
# (``--max-request-mb``): Triton holds a request whole, and the stub's memory is several times it.
DEFAULT_MAX_REQUEST_BYTES = 256 * 2**20
MAX_REQUEST_BYTES = 2**40


def request_bytes(megabytes: float) -> int:
    """``--max-request-mb`` (MiB) as the bytes an entry states: a finite, positive number of at
    most :data:`MAX_REQUEST_BYTES`; anything else is refused by name (0 would refuse every request)."""
    if isinstance(megabytes, bool) or not isinstance(megabytes, (int, float)) or not math.isfinite(megabytes) \
            or not 0 < megabytes * 2**20 <= MAX_REQUEST_BYTES:
        raise InputError(f"--max-request-mb must be a number above 0 and at most {MAX_REQUEST_BYTES >> 20} "
                         f"(MiB), received {megabytes!r}")
    return max(1, int(megabytes * 2**20))
NAME = TRITON_MODEL_NAME
# The entry is staged as `.NAME.` + 8 random characters and set aside as `.NAME.old`: 10 bytes
# more than the name, within the 255 a file name may have.
MAX_NAME_BYTES = 255 - 10



@dataclass
class TritonOptions:
    name: str | None = None
    max_batch_size: int | None = None  # None: DEFAULT_MAX_BATCH_SIZE, or 0 for a model with a fixed batch
    instances: int = 1
    provider: str = "cpu"
    fp16: bool = False
    queue_delay_us: int = 100
    force: bool = False
    backend: str = "onnxruntime"  # or "python": Predictor inside Triton's Python backend
    threads: int | None = None  # python backend: intra-op threads per instance (None: the profile's, or all cores)
    profile: str | Path | None = None  # python backend: serve this deployment profile as tuned
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES  # python backend: larger requests are refused (400)


@dataclass
class TritonEntry:
    path: Path
    config_path: Path
    model_path: Path
    config: str
    notes: list[str] = field(default_factory=list)  # what the entry does that the options did not say


def entry_name(model: str | Path) -> str:
    """The entry name a model file gets without ``--name``: its stem, each character Triton's
    names do not take replaced by ``_`` (``my model.onnx`` -> ``my_model``)."""
    return re.sub(r"[^A-Za-z0-9_.\-]", "_", Path(model).stem)


def validate(options: TritonOptions) -> None:
    if options.provider not in TRITON_PROVIDERS:
        raise InputError(f"unknown provider {options.provider!r}; expected one of {', '.join(TRITON_PROVIDERS)}")
    if options.backend not in TRITON_BACKENDS:
        raise InputError(f"unknown backend {options.backend!r}; expected one of {', '.join(TRITON_BACKENDS)}")
    for flag, value, low, high in (("--max-batch-size", options.max_batch_size, 0, MAX_BATCH_SIZE),
                                   ("--instances", options.instances, 1, MAX_INSTANCES),
                                   ("--queue-delay-us", options.queue_delay_us, 0, MAX_QUEUE_DELAY_US),
                                   ("--threads", options.threads, 1, MAX_THREADS),
                                   ("max_request_bytes", options.max_request_bytes, 1, MAX_REQUEST_BYTES)):
        if value is None and flag in ("--max-batch-size", "--threads"):
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise InputError(f"{flag} must be an integer from {low} to {high}, received {value!r}")
    if options.fp16 and (options.provider != "tensorrt" or options.backend != "onnxruntime"):
        raise InputError("--fp16 applies to the tensorrt provider only (on the onnxruntime backend)")
    if options.name is not None and not NAME.match(options.name):
        raise InputError(f"invalid model name {options.name!r}: use letters, digits, '_', '-' and '.'")


