"""ONNX graph passes, one module per pattern, registered by name (after onnxslim's ``fusion/``)."""

from . import eliminate_identity, fold_conv_bn, fuse_add_relu, unfuse_fused_conv  # noqa: F401  (import registers)
from .base import TARGETS, PassResult, list_passes, run_passes

__all__ = ["PassResult", "list_passes", "run_passes", "TARGETS"]
