"""The options of one session (:class:`SessionConfig`): data that providers and sessions both read.

It lives on its own so that ``providers`` (which turns it into provider options) and ``session``
(which creates sessions from it) depend on it, and never on each other in a circle.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["SessionConfig", "GPU_PROVIDERS", "ORT_NUMPY_TYPES"]

GPU_PROVIDERS = ("cuda", "tensorrt")  # the providers whose inputs and outputs live on a device
# onnxruntime's type names -> numpy's, for the inputs and outputs our models have.
ORT_NUMPY_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
                   "tensor(uint8)": np.uint8, "tensor(int8)": np.int8, "tensor(int64)": np.int64}


@dataclass
class SessionConfig:
    """Options of one session. Provider-specific fields are ignored by other providers."""

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
    profile_dir: str | None = None
    extra: dict[str, str] = field(default_factory=dict)
