"""onnxruntime on every execution provider, and the embedding API :class:`Predictor`.

- :mod:`.providers`: our provider names, which are available here, and each one's options;
- :mod:`.session`: :class:`SessionConfig`, session creation, node placement from a profile;
- :mod:`.predictor`: :class:`Predictor` and :class:`Prediction`.

Nothing here imports torch: an application that embeds a Predictor installs onnxruntime, numpy
and Pillow, not PyTorch.
"""

from __future__ import annotations

from .predictor import Prediction, Predictor
from .providers import AUTO_ORDER, PROVIDERS, available_providers, resolve_provider
from .config import SessionConfig
from .session import cpu_count, create_session, node_placement, open_session

__all__ = [
    "PROVIDERS",
    "AUTO_ORDER",
    "available_providers",
    "resolve_provider",
    "SessionConfig",
    "create_session",
    "open_session",
    "node_placement",
    "cpu_count",
    "Predictor",
    "Prediction",
]
