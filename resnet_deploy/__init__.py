"""resnet-deploy: ResNets from PyTorch definitions to fast, verified ONNX deployments."""

from __future__ import annotations

__version__ = "0.1.0"

from ._errors import *  # noqa: F401,F403
from ._errors import __all__ as _error_names
from ._registry import get_model_spec, list_models, model_name_for_depth
from .models import count_macs, create_model
from .runtime import Prediction, Predictor

__all__ = [
    "__version__",
    "create_model",
    "count_macs",
    "list_models",
    "get_model_spec",
    "model_name_for_depth",
    "Predictor",
    "Prediction",
    *_error_names,
]
