"""resnet-deploy: ResNets from PyTorch definitions to fast, verified ONNX deployments.

The deployment half (``Predictor``, :mod:`resnet_deploy.runtime`) imports no torch. The names
that build models (``create_model``, ``count_macs``, ``list_models``, ...) import the model zoo,
and with it torch, on first use (PEP 562), so ``import resnet_deploy`` works with the runtime
install alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

from ._errors import *  # noqa: F401,F403
from ._errors import __all__ as _error_names
from .runtime import Prediction, Predictor

if TYPE_CHECKING:
    from ._registry import get_model_spec, list_models, model_name_for_depth
    from .models import count_macs, create_model

# Name -> module that defines it; importing ``.models`` registers the builders (and needs torch).
_LAZY = {
    "create_model": "models",
    "count_macs": "models",
    "list_models": "models",
    "get_model_spec": "models",
    "model_name_for_depth": "models",
}

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


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'resnet_deploy' has no attribute {name!r}")
    from ._extras import require

    require(f"resnet_deploy.{name}", "torch")
    from . import _registry, models

    value = getattr(models, name, None) or getattr(_registry, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
