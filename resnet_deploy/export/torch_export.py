"""The one call into torch.onnx: the dynamo exporter's raw graph, its chatter captured."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from typing import Any

import onnx
import torch

from .._errors import ExportError, first_line
from ..graph.embedding import EMBEDDING_NAME  # the output of a features file (export --features)
from ..graph.io import DEFAULT_OPSET

__all__ = ["torch_export", "INPUT_NAME", "OUTPUT_NAME", "EMBEDDING_NAME"]

INPUT_NAME = "input"
OUTPUT_NAME = "logits"


def torch_export(model: torch.nn.Module, example: torch.Tensor, *, opset: int = DEFAULT_OPSET, dynamic: bool = True,
                 output_name: str = OUTPUT_NAME) -> onnx.ModelProto:
    """The raw graph of torch.onnx's dynamo exporter (its chatter captured), before any of our
    stages: ``dynamic`` makes the batch dimension symbolic. Raises ExportError on failure."""
    kwargs: dict[str, Any] = {}
    if dynamic:
        kwargs["dynamic_shapes"] = ({0: torch.export.Dim("batch", min=1, max=65536)},)
    sink = io.StringIO()
    onnx_logger = logging.getLogger("torch.onnx")
    level = onnx_logger.level
    onnx_logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                model,
                (example,),
                None,
                dynamo=True,
                optimize=True,
                opset_version=opset,
                input_names=[INPUT_NAME],
                output_names=[output_name],
                verbose=False,
                **kwargs,
            )
            proto = program.model_proto
    except Exception as exc:  # torch.export raises many unrelated types
        raise ExportError(f"torch.onnx export failed: {type(exc).__name__}: {first_line(exc)}") from exc
    finally:
        onnx_logger.setLevel(level)
    if dynamic:
        proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"
        proto.graph.output[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    return proto
