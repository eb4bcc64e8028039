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

if TYPE_CHECKING:
    from .runtime import Prediction, Predictor
    from ._registry import get_model_spec, list_models, model_name_for_depth
    from .models import count_macs, create_model

# Name -> module that defines it, imported on first use. The zoo and export need torch (``_TORCH``);
# the pipeline's verbs are here so that an application imports them from one place.
_LAZY = {
    "create_model": "models",
    "count_macs": "models",
    "list_models": "models",
    "get_model_spec": "models",
    "model_name_for_depth": "models",
    "ExportOptions": "export.options",
    "export_model": "export.exporter",
    "optimize_file": "export.optimize",
    "quantize_file": "precision.quantize",
    "TuneOptions": "tune",
    "compare_files": "diagnostics.compare",
    "TritonOptions": "serving.triton",
    "write_triton_repository": "serving.triton",
    "SessionConfig": "runtime",
    # onnxruntime loads with them: a process that only decodes images (batch's workers) never pays it.
    "Predictor": "runtime",
    "Prediction": "runtime",
}
_TORCH = {"models", "export.exporter"}

__all__ = [
    "__version__",
    *_LAZY,
    *_error_names,
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'resnet_deploy' has no attribute {name!r}")
    import importlib

    if module in _TORCH:
        from ._extras import require

        require(f"resnet_deploy.{name}", "torch")
    if module == "models":
        from . import _registry, models

        value = getattr(models, name, None) or getattr(_registry, name)
    else:
        value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
