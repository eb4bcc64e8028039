"""The options of one session (:class:`SessionConfig`): the benchmark's engines, a deployment
profile's ``session`` and a Predictor all speak these field names, so what was measured is built
from the values that are deployed. Importable as ``resnet_deploy.runtime.SessionConfig``."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["SessionConfig"]


@dataclass(frozen=True)
class SessionConfig:
    """Options of one session. Provider-specific fields are ignored by other providers.

    The benchmark's engines, a deployment profile's ``session`` and a Predictor all speak these
    field names: what was measured is built from the same values that are deployed."""

    provider: str = "auto"
    threads: int | None = None
    optimization: str = "all"  # disable | basic | extended | all
    cudnn_conv_algo_search: str = "EXHAUSTIVE"
    cuda_graph: bool = False
    prefer_nhwc: bool = False  # CUDA: NHWC convolution kernels (tensor cores without transposes)
    fp16: bool = False
    trt_cache_dir: str | None = None
    openvino_precision: str | None = None  # e.g. "BF16" where the CPU supports it
    static_batch: int | None = None  # the OpenVINO runtime compiles for this batch size only
    streams: int = 1  # OpenVINO: parallel inference streams (1 for latency; more for concurrent requests)
    profile_dir: str | None = None
    extra: dict[str, str] = field(default_factory=dict)
