"""Every engine configuration the toolkit measures, declared once under one name.

``bench`` runs the catalogue's ``bench`` entries for a model of the zoo; ``tune`` filters its
``tune`` entries to the providers and precisions asked for. One configuration has one name
everywhere: in bench's tables, in tune's candidates, in a profile's ``candidate`` and in the
``<profile>.<engine>.onnx`` file tune writes beside a profile.

An entry names a backend kind of :data:`resnet_deploy.bench.backends.BACKENDS`, a provider, a
precision, the artifact it runs (see :mod:`.model_files` for the vocabulary) and the backend's
options. For onnxruntime and the OpenVINO runtime those options are :class:`SessionConfig` fields
under their own names (``static_batch=True``: compiled for the batch size measured), turned into
the session by :func:`session_config`, the one translation: the benchmark's backends build their
sessions with it, and a profile records its fields (:func:`session_fields`). ``needs`` names what
else the machine must offer: ``cpu-bf16`` (AVX512-BF16 or AMX), ``ov-ep`` (onnxruntime's OpenVINO
EP), ``ov-runtime`` (the ``openvino`` package), ``compile`` (asked for with ``--compile``),
``torch-cuda``.

Nothing here imports torch.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from dataclasses import dataclass
from typing import Any

from .._names import OPENVINO_RUNTIME
from ..runtime.config import SessionConfig
from .schema import Engine

__all__ = ["CATALOGUE", "Entry", "BASELINE", "GPU_BASELINE", "REFERENCE", "OPENVINO_RUNTIME", "session_config",
           "session_fields", "machine_capabilities"]

BASELINE = "pytorch-eager"  # bench's baseline for the zoo
GPU_BASELINE = "pytorch-cuda"  # GPU engines are compared with it once it has been measured
REFERENCE = "ort-fp32"  # tune's reference: the given fp32 file on onnxruntime's CPU EP
# The backend kind of the OpenVINO runtime itself (not onnxruntime's OpenVINO EP, whose backend
# is "onnxruntime"): the same word in the engine, the profile's ``backend`` and Predictor.backend.


@dataclass(frozen=True)
class Entry:
    engine: Engine
    needs: frozenset[str] = frozenset()
    bench: bool = True  # bench --depth/--model runs it
    tune: bool = False  # a tune candidate (runs only the files tune makes: portable, int8, int8_static, fp16)


def _e(name: str, backend: str, provider: str, precision: str, description: str, *, artifact: str | None = None,
       needs: tuple[str, ...] = (), bench: bool = True, tune: bool = False, **options: Any) -> Entry:
    return Entry(Engine(name, backend, provider, precision, artifact, options, description),
                 frozenset(needs), bench, tune)


_OV = OPENVINO_RUNTIME

CATALOGUE: tuple[Entry, ...] = (
    _e("pytorch-eager", "pytorch", "cpu", "fp32", "torch eager, NCHW (the baseline)"),
    _e("pytorch-channels-last", "pytorch", "cpu", "fp32", "torch eager, channels_last", memory_format="channels_last"),
    _e("pytorch-bf16", "pytorch", "cpu", "bf16", "torch eager, bf16 autocast, channels_last",
       needs=("cpu-bf16",), memory_format="channels_last", autocast="bf16"),
    _e("pytorch-compile", "pytorch", "cpu", "fp32", "torch.compile (inductor), channels_last",
       needs=("compile",), memory_format="channels_last", compile=True),
    _e("ort-fp32", "onnxruntime", "cpu", "fp32", "onnxruntime CPU EP, the fp32 file (the reference)",
       artifact="portable", bench=False, tune=True, optimization="all"),
    _e("ort-export", "onnxruntime", "cpu", "fp32", "the raw torch.onnx export, ORT basic optimizations",
       artifact="export", optimization="basic"),
    _e("ort-fused", "onnxruntime", "cpu", "fp32", "simplified + our fusions (FusedConv), ORT basic optimizations",
       artifact="cpu", optimization="basic"),
    _e("ort-full", "onnxruntime", "cpu", "fp32", "simplified + our fusions, ORT full optimizations",
       artifact="cpu", optimization="all"),
    _e("ort-int8", "onnxruntime", "cpu", "int8", "static INT8 QDQ (U8S8, per-channel), ORT full optimizations",
       artifact="int8", tune=True, optimization="all"),
    _e("ort-int8-static", "onnxruntime", "cpu", "int8", "onnxruntime CPU EP, INT8 QDQ, static batch",
       artifact="int8_static", bench=False, tune=True),
    # onnxruntime's OpenVINO EP (its plugin lists Intel devices only).
    _e("ov-ep-fp32", "onnxruntime", "openvino", "fp32", "OpenVINO EP, fp32 file", artifact="portable", needs=("ov-ep",),
       tune=True),
    _e("ov-ep-bf16", "onnxruntime", "openvino", "bf16", "OpenVINO EP, BF16 inference precision hint",
       artifact="portable", needs=("ov-ep",), tune=True, openvino_precision="BF16"),
    _e("ov-ep-int8", "onnxruntime", "openvino", "int8", "OpenVINO EP, INT8 QDQ file", artifact="int8", needs=("ov-ep",),
       tune=True),
    _e("ov-ep-int8-static", "onnxruntime", "openvino", "int8", "OpenVINO EP, INT8 QDQ file with a static batch",
       artifact="int8_static", needs=("ov-ep",), tune=True),
    # The OpenVINO runtime itself, on any x86-64 CPU.
    _e("ov-fp32", _OV, "openvino", "fp32", "OpenVINO runtime, fp32 file, f32 hint", artifact="portable",
       needs=("ov-runtime",), tune=True),
    _e("ov-bf16", _OV, "openvino", "bf16", "OpenVINO runtime, fp32 file, bf16 hint", artifact="portable",
       needs=("ov-runtime", "cpu-bf16"), tune=True, openvino_precision="BF16"),
    _e("ov-int8", _OV, "openvino", "int8", "OpenVINO runtime, INT8 QDQ file", artifact="int8",
       needs=("ov-runtime",), tune=True),
    _e("ov-int8-static", _OV, "openvino", "int8", "OpenVINO runtime, INT8 QDQ file compiled for the batch size",
       artifact="int8", needs=("ov-runtime",), tune=True, static_batch=True),
    _e("pytorch-cuda", "pytorch", "cuda", "fp32", "torch eager on the GPU", needs=("torch-cuda",)),
    _e("pytorch-cuda-fp16", "pytorch", "cuda", "fp16", "torch eager on the GPU, fp16 autocast, channels_last",
       needs=("torch-cuda",), memory_format="channels_last", autocast="fp16"),
    _e("pytorch-cuda-fp16-graph", "pytorch", "cuda", "fp16",
       "torch on the GPU, fp16 autocast, channels_last, captured CUDA graph",
       needs=("torch-cuda",), memory_format="channels_last", autocast="fp16", cuda_graph=True),
    _e("cuda-fp32", "onnxruntime", "cuda", "fp32", "CUDA EP, the fp32 file, IO binding", artifact="portable",
       bench=False, tune=True),
    _e("cuda-fused", "onnxruntime", "cuda", "fp32",
       "CUDA EP, FusedConv, IO binding, EXHAUSTIVE conv search", artifact="cuda"),
    _e("cuda-fp16", "onnxruntime", "cuda", "fp16", "CUDA EP, fp16 file, IO binding", artifact="fp16", tune=True),
    # The knobs of onnxruntime's fastest measured CUDA configuration, named so a reader sees them:
    # NHWC convolution kernels (prefer_nhwc) and a captured CUDA graph replayed per run.
    _e("cuda-fp16-nhwc", "onnxruntime", "cuda", "fp16", "CUDA EP, fp16 file, prefer_nhwc, IO binding",
       artifact="fp16", prefer_nhwc=True),
    _e("cuda-fp16-nhwc-graph", "onnxruntime", "cuda", "fp16", "CUDA EP, fp16 file, prefer_nhwc, CUDA graph, IO binding",
       artifact="fp16", tune=True, prefer_nhwc=True, cuda_graph=True),
    _e("cuda-fp32-nhwc-graph", "onnxruntime", "cuda", "fp32",
       "CUDA EP, fp32 portable file, prefer_nhwc, CUDA graph, IO binding",
       artifact="portable", tune=True, prefer_nhwc=True, cuda_graph=True),
    _e("trt-fp32", "onnxruntime", "tensorrt", "fp32", "TensorRT EP, engine cache", artifact="portable"),
    _e("trt-fp16", "onnxruntime", "tensorrt", "fp16", "TensorRT EP, fp16, engine cache", artifact="portable", tune=True,
       fp16=True),
)


# Options of an engine that are not a session's: how the benchmark lays sessions out.
LAYOUT_OPTIONS = frozenset({"instances"})  # one session per request thread (tune --mode throughput)


def session_config(engine: Engine, *, batch: int, threads: int | None) -> SessionConfig:
    """The session that runs ``engine`` at batch size ``batch``: the benchmark's backends open
    theirs from it, and :func:`session_fields` records it in a profile."""
    options = {k: v for k, v in engine.options.items() if k not in LAYOUT_OPTIONS}
    if options.get("static_batch") is True:
        options["static_batch"] = batch
    return SessionConfig(provider=engine.provider, threads=threads, **options)


def session_fields(engine: Engine, batch: int) -> dict[str, Any]:
    """The :class:`SessionConfig` fields that run ``engine`` as it was measured (at batch size
    ``batch``) and differ from the defaults: what a deployment profile records."""
    config, default = session_config(engine, batch=batch, threads=None), SessionConfig(provider=engine.provider)
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(SessionConfig)
            if getattr(config, f.name) != getattr(default, f.name)}


def machine_capabilities() -> set[str]:
    """What this machine offers the catalogue's ``needs``, short of what only torch can tell
    (``torch-cuda``) and what is asked for (``compile``): ``cpu-bf16``, ``ov-ep``, ``ov-runtime``."""
    from .._machine import cpu_flags
    from ..runtime.providers import openvino_backend

    caps = set()
    if {"avx512_bf16", "amx_bf16"} & cpu_flags():
        caps.add("cpu-bf16")
    if openvino_backend() == "onnxruntime":
        caps.add("ov-ep")
    if importlib.util.find_spec("openvino") is not None:
        from ..runtime.openvino_native import native_openvino_available

        if native_openvino_available():
            caps.add("ov-runtime")
    return caps
