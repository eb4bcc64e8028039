"""Execution providers: our short names, which are usable here, and each one's options.

A provider asked for by name that is not available is an error listing the available ones:
there is no silent fallback to the CPU. ``auto`` takes the first available in :data:`AUTO_ORDER`.
"""

from __future__ import annotations

import functools
import json
import threading
import warnings
from pathlib import Path
from typing import Any

import onnxruntime as ort

from .._errors import ProviderUnavailableError, first_line
from .config import SessionConfig


__all__ = [
    "PROVIDERS",
    "AUTO_ORDER",
    "available_providers",
    "resolve_provider",
    "provider_list",
    "openvino_options",
    "openvino_plugin_devices",
    "openvino_backend",
    "preload_cuda_libraries",
    "tensorrt_libraries",
]

# Our short names -> onnxruntime's provider names.
PROVIDERS: dict[str, str] = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
}
# `auto` takes the first available. TensorRT and CUDA first (GPU), then OpenVINO, which
# measured about 3.5x faster than the CPU EP on ResNet-50 on AVX-512/AMX CPUs. `auto` takes
# OpenVINO only through onnxruntime's plugin: the OpenVINO runtime on its own (see
# openvino_backend) is used when asked for by name or chosen by `resnet-deploy tune`, which
# measures it against the alternatives on the machine instead of assuming it wins.
AUTO_ORDER = ("tensorrt", "cuda", "openvino", "cpu")

_OV_LOCK = threading.Lock()
_OV_REGISTERED: list[bool] = []  # [] unknown, [True]/[False] after the first attempt


def openvino_plugin_devices() -> list[Any]:
    """Register the ``onnxruntime-ep-openvino`` plugin once; return its devices (empty if none)."""
    with _OV_LOCK:
        if not _OV_REGISTERED:
            try:
                import onnxruntime_ep_openvino as ov_ep  # optional extra: pip install resnet-deploy[openvino]

                ort.register_execution_provider_library(ov_ep.get_ep_name(), ov_ep.get_library_path())
                _OV_REGISTERED.append(True)
            except (ImportError, FileNotFoundError, RuntimeError, AttributeError):
                _OV_REGISTERED.append(False)
        if not _OV_REGISTERED[0]:
            return []
    return [d for d in ort.get_ep_devices() if d.ep_name == PROVIDERS["openvino"]]


def _openvino_in_onnxruntime() -> bool:
    """onnxruntime's OpenVINO EP: built in (onnxruntime-openvino) or the plugin with a device."""
    return PROVIDERS["openvino"] in ort.get_available_providers() or bool(openvino_plugin_devices())


def openvino_backend() -> str | None:
    """How ``openvino`` runs here: ``"onnxruntime"`` (its OpenVINO EP, built in or the plugin,
    which enumerates Intel devices only), ``"runtime"`` (the ``openvino`` package itself, on any
    x86-64 CPU), or None when neither is installed and usable."""
    if _openvino_in_onnxruntime():
        return "onnxruntime"
    from .openvino_native import native_openvino_available

    return "runtime" if native_openvino_available() else None


@functools.lru_cache(maxsize=1)
def tensorrt_libraries() -> bool:
    """Whether TensorRT itself can be loaded. onnxruntime-gpu lists ``TensorrtExecutionProvider``
    whether or not TensorRT is installed (its provider library loads ``libnvinfer`` only when a
    session is created), so on a GPU machine without TensorRT ``auto`` would pick it and fail."""
    import ctypes
    import glob
    import importlib.util

    # onnxruntime 1.2x-1.3x's TensorRT EP is built against TensorRT 10: an older libnvinfer is no help.
    candidates = ["libnvinfer.so.10", "nvinfer_10.dll"]
    spec = importlib.util.find_spec("tensorrt_libs")  # pip's tensorrt wheels put the libraries here
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidates += sorted(glob.glob(f"{folder}/libnvinfer.so.10*"))
    for name in candidates:
        try:
            ctypes.CDLL(name)
            return True
        except OSError:
            continue
    return False


def _available(short: str) -> bool:
    if short == "openvino":
        return openvino_backend() is not None
    listed = PROVIDERS[short] in ort.get_available_providers()
    return listed and (short != "tensorrt" or tensorrt_libraries())


def available_providers() -> list[str]:
    """Short names of the providers usable on this machine, fastest first."""
    return [short for short in AUTO_ORDER if _available(short)]


def resolve_provider(provider: str) -> str:
    """Validate a provider name (``auto`` picks the fastest available); never falls back silently.

    Only the provider asked for is probed (``auto``: onnxruntime's own list), so that naming
    ``cpu`` or ``cuda`` never imports the OpenVINO runtime (a quarter of a second at start-up)."""
    provider = provider.lower()
    if provider == "auto":
        for short in AUTO_ORDER:
            if (short == "openvino" and _openvino_in_onnxruntime()) or (short != "openvino" and _available(short)):
                return short
    if provider not in PROVIDERS:
        raise ProviderUnavailableError(
            f"unknown provider {provider!r}; expected auto or one of {', '.join(PROVIDERS)}"
        )
    if not _available(provider):
        if provider == "tensorrt" and PROVIDERS[provider] in ort.get_available_providers():
            raise ProviderUnavailableError(
                "provider 'tensorrt' is listed by onnxruntime but TensorRT's libraries (libnvinfer) are not installed; "
                f"available: {', '.join(available_providers())}"
            )
        raise ProviderUnavailableError(
            f"provider {provider!r} is not available on this machine; available: {', '.join(available_providers())}"
        )
    return provider


def provider_list(short: str, config: SessionConfig) -> list[Any]:
    """The ``providers=`` argument of ``InferenceSession`` for ``short``, CPU last for the nodes it must run."""
    if short == "cuda":
        opts: dict[str, Any] = {
            # The default HEURISTIC search has been reported to pick convolution algorithms
            # several times slower than EXHAUSTIVE for ResNets; the search runs once per shape.
            "cudnn_conv_algo_search": config.cudnn_conv_algo_search,
            "do_copy_in_default_stream": "1",
        }
        if config.cuda_graph:
            opts["enable_cuda_graph"] = "1"
        if config.prefer_nhwc:
            opts["prefer_nhwc"] = "1"
        return [(PROVIDERS["cuda"], opts), PROVIDERS["cpu"]]
    if short == "tensorrt":
        trt: dict[str, Any] = {"trt_fp16_enable": "1" if config.fp16 else "0"}
        if config.trt_cache_dir:
            Path(config.trt_cache_dir).mkdir(parents=True, exist_ok=True)
            trt.update(
                trt_engine_cache_enable="1",
                trt_engine_cache_path=str(config.trt_cache_dir),
                trt_timing_cache_enable="1",
                trt_timing_cache_path=str(config.trt_cache_dir),
            )
        cuda = {"cudnn_conv_algo_search": config.cudnn_conv_algo_search}
        return [(PROVIDERS["tensorrt"], trt), (PROVIDERS["cuda"], cuda), PROVIDERS["cpu"]]
    if short == "openvino" and PROVIDERS["openvino"] in ort.get_available_providers():
        return [(PROVIDERS["openvino"], openvino_options(config)), PROVIDERS["cpu"]]
    return [PROVIDERS["cpu"]]


def openvino_options(config: SessionConfig) -> dict[str, str]:
    """OpenVINO EP options. The inference precision is always explicit: on CPUs with AMX,
    OpenVINO's CPU plugin otherwise runs fp32 models in bf16, which a benchmark must not hide."""
    hint = "bf16" if (config.openvino_precision or "").upper() == "BF16" else "f32"
    options = {"device_type": "CPU", "load_config": json.dumps({"CPU": {"INFERENCE_PRECISION_HINT": hint}})}
    if config.threads:
        options["num_of_threads"] = str(config.threads)
    if config.streams > 1:
        options["num_streams"] = str(config.streams)
    return options


_PRELOADED: list[bool] = []


def preload_cuda_libraries() -> None:
    """Load CUDA and cuDNN from the ``nvidia-*`` pip packages when they are installed that way
    (onnxruntime >= 1.21), so the CUDA and TensorRT providers find them without LD_LIBRARY_PATH."""
    if not _PRELOADED and hasattr(ort, "preload_dlls"):
        _PRELOADED.append(True)
        try:
            ort.preload_dlls()
        except Exception as exc:  # a system-wide CUDA install does not need it
            warnings.warn(f"onnxruntime.preload_dlls() failed: {first_line(exc)}", RuntimeWarning, stacklevel=3)
