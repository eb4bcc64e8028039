"""Triton's ``ModelConfig`` for an ONNX file: inputs and outputs named, typed and shaped from
the file itself, dynamic batching, an instance group, and the onnxruntime backend's execution
accelerators (or the Python backend's parameters), built as structured data (:mod:`.pbtxt`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import onnx

from ..._errors import OnnxModelError
from ...image_input import is_image_input
from ...graph.io import image_input, model_sha256
from ...profile.deployment import load_profile
from ...preprocess.images import MAX_RESIZE_PIXELS
from .options import DEFAULT_MAX_BATCH_SIZE, TritonOptions
from .pbtxt import Enum, Field, Message, check_tensor_name, render

__all__ = ["build_config", "render_config", "batching", "served_io"]

_TYPES = {
    onnx.TensorProto.FLOAT: "TYPE_FP32",
    onnx.TensorProto.FLOAT16: "TYPE_FP16",
    onnx.TensorProto.BFLOAT16: "TYPE_BF16",
    onnx.TensorProto.DOUBLE: "TYPE_FP64",
    onnx.TensorProto.INT8: "TYPE_INT8",
    onnx.TensorProto.UINT8: "TYPE_UINT8",
    onnx.TensorProto.INT32: "TYPE_INT32",
    onnx.TensorProto.INT64: "TYPE_INT64",
}

@dataclass
class _Tensor:
    name: str
    data_type: str
    dims: list[int]  # -1 for a dynamic dimension
    batch_dynamic: bool


def _tensor(v: onnx.ValueInfoProto, source: str) -> _Tensor:
    t = v.type.tensor_type
    if not v.type.HasField("tensor_type") or t.elem_type not in _TYPES:
        raise OnnxModelError(f"{source}: {v.name!r} is not a tensor of a type Triton's onnxruntime backend takes")
    dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else -1 for d in t.shape.dim]
    return _Tensor(v.name, _TYPES[t.elem_type], dims, bool(dims) and dims[0] == -1)


def _io(model: onnx.ModelProto, source: str) -> tuple[_Tensor, list[_Tensor]]:
    image = image_input(model, source)
    value = next(v for v in model.graph.input if v.name == image.name)
    if is_image_input(model):  # uint8 RGB [N, H, W, 3] of any size: the preprocessing is in the graph
        return _tensor(value, source), [_tensor(o, source) for o in model.graph.output]
    if any(d is None for d in image.shape[1:]):
        raise OnnxModelError(f"{source}: input {image.name!r} has dynamic C/H/W dims {image.describe()}; "
                             "only the batch may be dynamic")
    if image.shape[1] not in (1, 3):
        raise OnnxModelError(f"{source} must have one image input [N, C, H, W] with 1 or 3 channels; "
                             f"it has {image.describe()}")
    return _tensor(value, source), [_tensor(o, source) for o in model.graph.output]


def served_io(model: onnx.ModelProto, source: str = "model") -> tuple[_Tensor, list[_Tensor]]:
    """The input an entry of ``model`` takes and the outputs it answers with (a Python-backend
    entry answers with the first alone): names, Triton data types and dims (-1 where dynamic)."""
    return _io(model, source)


def _dims(t: _Tensor, batched: bool) -> list[int]:
    return t.dims[1:] if batched else t.dims


def _preferred_batches(max_batch: int) -> list[int]:
    sizes, b = [], 4
    while b <= max_batch:
        sizes.append(b)
        b *= 2
    return sizes or [max_batch]


def batching(model: onnx.ModelProto, options: TritonOptions, source: str = "model") -> tuple[int, str | None]:
    """The ``max_batch_size`` to write for ``model``, and a note when it is not the one asked for.

    Triton batches along a first dimension the model leaves dynamic; a model with a fixed batch
    gets 0 (its full shape, no batching): noted when that came from the default, refused when
    the user asked for batching explicitly. A Python-backend entry batches any model: its
    ``Predictor`` runs a fixed-batch file in chunks of its batch.
    """
    inp, _ = _io(model, source)
    if inp.batch_dynamic or options.backend == "python":
        return (DEFAULT_MAX_BATCH_SIZE if options.max_batch_size is None else options.max_batch_size), None
    fixed = inp.dims[0]
    if options.max_batch_size:
        raise OnnxModelError(f"{source} has a fixed batch of {fixed}: Triton cannot batch it; "
                             "pass --max-batch-size 0 or re-export with a dynamic batch")
    if options.max_batch_size == 0:
        return 0, None
    return 0, (f"{source} has a fixed batch of {fixed}: wrote max_batch_size 0 (no dynamic batching; every request "
               f"is one tensor of {inp.dims}); re-export with a dynamic batch to let Triton batch")


def _tensor_message(t: _Tensor, batched: bool, image: bool) -> Message:
    message = Message().add("name", t.name).add("data_type", Enum(t.data_type))
    if image and t.data_type in ("TYPE_FP32", "TYPE_FP16"):
        message.add("format", Enum("FORMAT_NCHW"))
    return message.add("dims", _dims(t, batched))


def _accelerators(options: TritonOptions) -> list[Field]:
    """The onnxruntime backend's execution accelerators and parameters for ``options.provider``."""
    fields: list[Field] = []
    if options.provider == "tensorrt":
        params = [("precision_mode", "FP16" if options.fp16 else "FP32"), ("max_workspace_size_bytes", "1073741824"),
                  ("trt_engine_cache_enable", "1")]
        trt = Message().add("name", "tensorrt")
        for key, value in params:
            trt.add("parameters", Message().add("key", key).add("value", value))
        fields.append(("optimization", Message().add("execution_accelerators",
                                                     Message().add("gpu_execution_accelerator", [trt]))))
    elif options.provider == "openvino":
        ov = Message().add("name", "openvino")
        fields.append(("optimization", Message().add("execution_accelerators",
                                                     Message().add("cpu_execution_accelerator", [ov]))))
    if options.provider in ("cuda", "tensorrt"):
        # onnxruntime backend parameter: 0 = EXHAUSTIVE cuDNN convolution algorithm search.
        fields.append(("parameters", _parameter("cudnn_conv_algo_search", "0")))
    return fields


def _parameter(key: str, value: str) -> Message:
    return Message().add("key", key).add("value", Message().add("string_value", value))


def build_config(model: onnx.ModelProto, name: str, options: TritonOptions, source: str = "model") -> Message:
    """Triton's ``ModelConfig`` for ``model`` as structured data (written by :mod:`.pbtxt`)."""
    inp, outputs = _io(model, source)
    for t in (inp, *outputs):
        check_tensor_name(t.name, source)
    max_batch, _ = batching(model, options, source)
    batched = max_batch > 0
    if batched and options.backend == "onnxruntime" and any(not o.batch_dynamic for o in outputs):
        raise OnnxModelError(f"{source}: the input batch is dynamic but an output's is not")
    config = Message().add("name", name)
    if options.backend == "python":
        config.add("backend", "python")
    else:
        config.add("platform", "onnxruntime_onnx")
    config.add("max_batch_size", max_batch)
    config.add("input", [_tensor_message(inp, batched, image=True)])
    served = outputs[:1] if options.backend == "python" else outputs  # Predictor answers with the logits
    config.add("output", [_tensor_message(o, batched, image=False) for o in served])
    if batched:
        config.add("dynamic_batching", Message().add("preferred_batch_size", _preferred_batches(max_batch))
                   .add("max_queue_delay_microseconds", options.queue_delay_us))
    gpu = options.provider in ("cuda", "tensorrt") and options.backend == "onnxruntime"
    config.add("instance_group",
               [Message().add("count", options.instances).add("kind", Enum("KIND_GPU" if gpu else "KIND_CPU"))])
    if options.backend == "python":
        config.add("parameters", _parameter("resnet_deploy_provider", options.provider))
        if options.threads is not None:
            config.add("parameters", _parameter("resnet_deploy_threads", str(options.threads)))
        # Bounds model.py checks on each request's shape before it touches the data.
        config.add("parameters", _parameter("resnet_deploy_max_request_bytes", str(options.max_request_bytes)))
        config.add("parameters", _parameter("resnet_deploy_max_image_pixels", str(MAX_RESIZE_PIXELS)))
        # What the entry serves, so that bench --url can say when its in-process baseline is not it.
        if Path(source).is_file():
            config.add("parameters", _parameter("resnet_deploy_model_sha256", model_sha256(source)))
        if options.profile is not None:
            config.add("parameters", _parameter("resnet_deploy_profile_engine",
                                                load_profile(options.profile, check_machine=False,
                                                             check_model=False).engine))
    else:
        config.fields.extend(_accelerators(options))
        if options.threads is not None:  # the onnxruntime backend's own session option
            config.add("parameters", _parameter("intra_op_thread_count", str(options.threads)))
    return config


def render_config(model: onnx.ModelProto, name: str, options: TritonOptions, source: str = "model") -> str:
    """config.pbtxt for ``model`` (text format of Triton's ``ModelConfig`` protobuf)."""
    return render(build_config(model, name, options, source))


