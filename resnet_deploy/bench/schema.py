"""The benchmark's data: what an engine is, what the parent tells a worker, what they say back,
and the one record every report (JSON, CSV, markdown, the terminal table) is written from.

Parent and worker exchange these frozen dataclasses as one JSON object per line; nothing here
imports torch, numpy or onnxruntime, so the worker can load it for free.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar

__all__ = ["DEFAULT_REQUEST_TIMEOUT_S", "PARENT_ENV",
    "Engine", "WorkerSpec", "RoundRequest", "FinishRequest", "Ready", "RoundResult", "Finished", "Failure",
    "Record", "RECORD_FIELDS", "BenchResult", "encode", "decode", "P90_P50_LIMIT", "ROUND_SPREAD_LIMIT", "EngineGone",
]

# Seconds one request to a served model may take unless --request-timeout says otherwise (bench --url).
DEFAULT_REQUEST_TIMEOUT_S = 30.0
PARENT_ENV = "RESNET_DEPLOY_BENCH_PARENT"  # the pid of the bench a worker belongs to

# A measurement is flagged unstable above these (see docs/commands/bench.md). A steady CPU run
# has p90/p50 around 1.05-1.2; a neighbour's burst or a frequency change pushes it past 1.5.
# The ratio against the baseline is measured once per interleaved round; rounds that disagree
# by more than 30 % (max/min of the per-round ratios) mean the machine changed under us.
P90_P50_LIMIT = 1.5
ROUND_SPREAD_LIMIT = 1.3


@dataclass(frozen=True)
class Engine:
    """One way of running the model. ``backend`` keys the worker's registry of backends
    (:data:`resnet_deploy.bench.backends.BACKENDS`); ``options`` are that backend's settings
    (for onnxruntime: :class:`~resnet_deploy.runtime.SessionConfig` fields)."""

    name: str
    backend: str  # "pytorch", "onnxruntime", "openvino-runtime" or "triton"
    provider: str  # "cpu", "cuda", "tensorrt", "openvino"
    precision: str
    artifact: str | None = None  # an artifact name of the cache, or an ONNX file's path
    options: dict[str, Any] = field(default_factory=dict)
    description: str = ""


@dataclass(frozen=True)
class WorkerSpec:
    """Everything one worker needs: the engine, the batch, and where its inputs and outputs live."""

    engine: Engine
    batch_size: int
    threads: int  # intra-op threads of this worker (already divided by the concurrency)
    concurrency: int
    input_path: str
    output_path: str
    warmup: int
    architecture: str | None = None  # for PyTorch backends: a registered model name
    num_classes: int | None = None
    weights: str | None = None
    model_path: str | None = None  # for onnxruntime backends: the ONNX file
    trt_cache_dir: str | None = None
    eval_x_path: str | None = None
    eval_y_path: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "WorkerSpec":
        data = json.loads(text)
        return cls(**{**data, "engine": Engine(**data["engine"])})


# -- the protocol: one JSON line per message --------------------------------------------------------

@dataclass(frozen=True)
class RoundRequest:
    """Time one round: for ``duration`` seconds (at least ``min_iterations`` runs), or exactly
    ``iterations`` runs (in throughput mode: requests, shared by the request threads), after
    ``warmup`` untimed runs that wake thread pools and caches after the wait for the others."""

    duration: float | None = None
    iterations: int | None = None
    min_iterations: int = 1
    warmup: int = 1


@dataclass(frozen=True)
class FinishRequest:
    """Report memory (and accuracy with evaluation data), then exit."""


@dataclass(frozen=True)
class Ready:
    pid: int
    session_create_ms: float
    first_run_ms: float
    torch_imported: bool  # 'torch' in sys.modules after the session was built


@dataclass(frozen=True)
class RoundResult:
    latencies_ms: list[float]
    wall_s: float  # from the first request's start to the last one's end
    images: int  # batch size x requests completed


@dataclass(frozen=True)
class Finished:
    peak_rss_mb: float | None  # VmHWM of the worker (reset at start where the kernel allows)
    rss_mb: float | None  # VmRSS after the timed rounds
    accuracy: float | None
    torch_imported: bool
    # A served model (engine backend "triton"): per request over the timed rounds, from the
    # server's own statistics; the mean number of requests Triton ran together.
    server_queue_ms: float | None = None
    server_compute_ms: float | None = None
    server_batch: float | None = None


@dataclass(frozen=True)
class Failure:
    error: str
    engine_gone: bool = False  # the engine cannot answer again in this run: its later groups are not tried


class EngineGone(RuntimeError):
    """Raised in a worker when its engine cannot answer again in this run (a served model that
    stopped answering): the parent fails the engine's remaining groups at once instead of
    waiting for each of them in turn."""


_MESSAGES: dict[str, type] = {c.__name__: c for c in (RoundRequest, FinishRequest, Ready,
                                                      RoundResult, Finished, Failure)}


def encode(message: Any) -> str:
    """One protocol line (without the newline)."""
    return json.dumps({"type": type(message).__name__, **asdict(message)})


def decode(line: str) -> Any:
    data = json.loads(line)
    cls = _MESSAGES.get(data.pop("type", None))
    if cls is None:
        raise ValueError(f"not a benchmark protocol message: {line[:80]!r}")
    return cls(**data)


# -- the record -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Record:
    """One measurement: an engine at one batch size (and, in throughput mode, one concurrency)."""

    engine: str
    provider: str
    precision: str
    batch_size: int
    mode: str = "latency"
    concurrency: int = 1
    threads: int | None = None
    p50_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None
    mean_ms: float | None = None
    std_ms: float | None = None
    images_per_s: float | None = None
    baseline: str | None = None
    speedup_vs_baseline: float | None = None
    speedup_min: float | None = None
    speedup_max: float | None = None
    unstable: bool = False
    unstable_reason: str | None = None
    rounds: int | None = None
    iterations: int | None = None
    session_create_ms: float | None = None
    first_run_ms: float | None = None
    peak_rss_mb: float | None = None
    rss_mb: float | None = None
    torch_imported: bool | None = None
    max_rel_error: float | None = None
    gflops: float | None = None
    peak_fraction: float | None = None
    accuracy: float | None = None
    server_queue_ms: float | None = None  # a served model: the server's mean queue time per request
    server_compute_ms: float | None = None  # ... and its mean compute time per request
    server_batch: float | None = None  # ... and the mean number of requests it ran together
    synthetic_calibration: bool = False
    source: str | None = None  # the ONNX file measured
    description: str = ""
    error: str | None = None
    worker_pid: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


RECORD_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Record))


@dataclass
class BenchResult:
    records: list[Record]
    environment: dict[str, Any]
    options: dict[str, Any] = field(default_factory=dict)
    baseline: str | None = None
    baseline_note: str = ""
    thresholds: ClassVar[dict[str, float]] = {"p90_p50": P90_P50_LIMIT, "round_spread": ROUND_SPREAD_LIMIT}

    def to_dict(self) -> dict[str, Any]:
        return {
            "results": [r.to_dict() for r in self.records],
            "baseline": self.baseline,
            "baseline_note": self.baseline_note,
            "unstable_thresholds": dict(self.thresholds),
            "environment": self.environment,
            "options": self.options,
        }
