"""The options of one session (:class:`SessionConfig`) and the runtime's shared facts: data that
providers and sessions both read.

It lives on its own so that ``providers`` (which turns it into provider options) and ``session``
(which creates sessions from it) depend on it, and never on each other in a circle.
:class:`SessionConfig` itself is defined with the deployment profile that records it
(:mod:`resnet_deploy.profile.session`), the floor under the runtime: a profile's ``session`` *is*
the SessionConfig a Predictor opens.
"""

from __future__ import annotations

import numpy as np

from ..profile.session import SessionConfig

__all__ = ["SessionConfig", "GPU_PROVIDERS", "ORT_NUMPY_TYPES"]

GPU_PROVIDERS = ("cuda", "tensorrt")  # the providers whose inputs and outputs live on a device
# onnxruntime's type names -> numpy's, for the inputs and outputs our models have.
ORT_NUMPY_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
                   "tensor(uint8)": np.uint8, "tensor(int8)": np.int8, "tensor(int64)": np.int64}
