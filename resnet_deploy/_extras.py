"""Optional dependency groups: the runtime install has no torch; the ``export`` extra adds it.

A feature that needs an extra that is not installed says which one, in one line, instead of a
``ModuleNotFoundError`` traceback from deep inside an import.
"""

from __future__ import annotations

import importlib.util

from ._errors import ResnetDeployError

__all__ = ["MissingExtraError", "require", "EXPORT_EXTRA"]

# module -> (what it is called, the extra that installs it)
EXPORT_EXTRA = {"torch": "PyTorch", "onnxsim": "onnxsim", "onnxscript": "onnxscript", "safetensors": "safetensors"}


class MissingExtraError(ResnetDeployError, ImportError):
    """A feature needs a package of an optional extra that is not installed."""


def require(what: str, *modules: str, extra: str = "export") -> None:
    """Raise :class:`MissingExtraError` naming ``extra`` unless every module in ``modules`` is
    importable. Checked with ``find_spec``, so nothing is imported here."""
    for module in modules:
        if importlib.util.find_spec(module) is None:
            name = EXPORT_EXTRA.get(module, module)
            raise MissingExtraError(f"{what} needs {name}: pip install 'resnet-deploy[{extra}]'")
