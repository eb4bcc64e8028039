"""Verified ONNX files: a model of the zoo exported from PyTorch (``exporter``, ``torch_export``,
``weights``), or an ONNX file made elsewhere optimized (``optimize``), through the shared verified
stages (``pipeline``) and, with ``--image-input``, the preprocessing put in the graph and checked on
photos (``image_input``).

``from resnet_deploy.export import export_model`` imports PyTorch; the other modules of this
package do not, so that ``optimize`` and ``quantize`` run with the runtime install.
"""

from __future__ import annotations

from typing import Any

_LAZY = {"ExportOptions", "ExportResult", "export_model"}


def __getattr__(name: str) -> Any:  # PEP 562: torch only when the exporter is asked for
    if name not in _LAZY:
        raise AttributeError(f"module 'resnet_deploy.export' has no attribute {name!r}")
    from . import exporter, options

    return getattr(options if name == "ExportOptions" else exporter, name)
