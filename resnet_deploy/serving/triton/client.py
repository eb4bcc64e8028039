"""The client call ``serve`` prints: one command that runs as pasted.

A shell line, ``python -c '...'``, that imports what it uses, builds an input of the served
model's own name, type and dims (batch 1; an image-input model gets a photo-sized uint8 image),
fills it with data, sends it over gRPC and prints the top class (a features file has none: the
embedding's shape and first values). It is built from structure: the
tensor names are Python literals (``json.dumps``) and the code one shell word (``shlex.quote``),
so no name can break it.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import onnx

from ...graph.embedding import is_features_file
from ...graph.metadata import read_metadata
from ...image_input import is_image_input
from .config import served_io

__all__ = ["client_command", "load_test_command"]

IMAGE_SIDE = 224  # an image-input model takes any size: a photo's


def client_command(model_path: str | Path, name: str, grpc: str) -> str:
    """``python -c '...'``: one request to ``name`` served at ``grpc`` (HOST:PORT) from the
    model file it serves, printing the top class of its answer (of an embedding, its shape and
    first four values)."""
    source = str(model_path)
    model = onnx.load(source, load_external_data=False)  # names, dims and metadata: no weights
    inp, outputs = served_io(model, source)
    datatype = inp.data_type.removeprefix("TYPE_")
    if is_image_input(model):  # [N, H, W, 3] of any size
        side = read_metadata(model, source).get("crop_size")
        side = side if isinstance(side, int) and side > 0 else IMAGE_SIDE
        shape = [1, side, side, 3]
        data = f"np.random.default_rng(0).integers(0, 256, {shape}, dtype=np.uint8)"
    else:
        shape = [1 if d < 0 else d for d in inp.dims]
        data = f"np.random.default_rng(0).standard_normal({shape}).astype(np.{_NUMPY.get(datatype, 'float32')})"
    code = "; ".join([
        "import numpy as np, tritonclient.grpc as g",
        f"x = g.InferInput({json.dumps(inp.name)}, {shape}, {json.dumps(datatype)})",
        f"x.set_data_from_numpy({data})",
        f"r = g.InferenceServerClient({json.dumps(grpc)}).infer({json.dumps(name)}, [x])",
        f"y = r.as_numpy({json.dumps(outputs[0].name)})",
        "print(y.shape, y[0, :4])" if is_features_file(read_metadata(model, source)) else "print(y.argmax(1))",
    ])
    return f"python -c {shlex.quote(code)}"


def load_test_command(name: str, grpc: str, *, model: str | Path | None = None,
                      profile: str | Path | None = None) -> str:
    """``resnet-deploy bench ... --url grpc://...``: the served model beside what it serves, run in
    process: ``profile``'s file in its configuration (``bench --profile``), else ``model`` as it is."""
    target = ["--profile", str(profile)] if profile is not None else [str(model)]
    return shlex.join(["resnet-deploy", "bench", *target, "--url", f"grpc://{grpc}",
                       "--model", name, "--mode", "throughput"])


_NUMPY = {"FP32": "float32", "FP16": "float16", "FP64": "float64", "UINT8": "uint8", "INT8": "int8", "INT32": "int32",
          "INT64": "int64"}
