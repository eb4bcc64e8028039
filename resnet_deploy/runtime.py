"""onnxruntime sessions on every execution provider, and the embedding API :class:`Predictor`.

A provider asked for by name that is not available is an error listing the available ones:
there is no silent fallback to CPU. After a session is created, ``session.get_providers()`` must
contain the provider asked for, and node-level placement (which provider runs how many nodes)
is reported, so that onnxruntime's per-node fallbacks to CPU are visible.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import onnxruntime as ort

from ._errors import InputError, ProviderUnavailableError, RuntimeBackendError, first_line
from .onnx_io import load_onnx, read_metadata
from .preprocess import ImageLike, Preprocessing, imagenet_labels

__all__ = [
    "PROVIDERS",
    "available_providers",
    "resolve_provider",
    "SessionConfig",
    "create_session",
    "open_session",
    "node_placement",
    "Predictor",
    "Prediction",
]

# Our short names -> onnxruntime's provider names.
PROVIDERS: dict[str, str] = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
}
# `auto` takes the first available. TensorRT and CUDA first (GPU), then OpenVINO, which
# measured about 3.5x faster than the CPU EP on ResNet-50 on AVX-512/AMX CPUs.
AUTO_ORDER = ("tensorrt", "cuda", "openvino", "cpu")

_OV_LOCK = threading.Lock()
_OV_REGISTERED: list[bool] = []  # [] unknown, [True]/[False] after the first attempt


def _openvino_plugin_devices() -> list[Any]:
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


def available_providers() -> list[str]:
    """Short names of the providers usable on this machine, fastest first."""
    names = set(ort.get_available_providers())
    out = []
    for short in AUTO_ORDER:
        full = PROVIDERS[short]
        if full in names or (short == "openvino" and _openvino_plugin_devices()):
            out.append(short)
    return out


def resolve_provider(provider: str) -> str:
    """Validate a provider name (``auto`` picks the fastest available); never falls back silently."""
    provider = provider.lower()
    available = available_providers()
    if provider == "auto":
        return available[0]
    if provider not in PROVIDERS:
        raise ProviderUnavailableError(
            f"unknown provider {provider!r}; expected auto or one of {', '.join(PROVIDERS)}"
        )
    if provider not in available:
        raise ProviderUnavailableError(
            f"provider {provider!r} is not available on this machine; available: {', '.join(available)}"
        )
    return provider


@dataclass
class SessionConfig:
    """Options of one session. Provider-specific fields are ignored by other providers."""

    provider: str = "auto"
    threads: int | None = None
    optimization: str = "all"  # disable | basic | extended | all
    cudnn_conv_algo_search: str = "EXHAUSTIVE"
    cuda_graph: bool = False
    fp16: bool = False
    trt_cache_dir: str | None = None
    openvino_precision: str | None = None  # e.g. "BF16" where the CPU supports it
    profile_dir: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


_OPT_LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


def _session_options(config: SessionConfig) -> ort.SessionOptions:
    so = ort.SessionOptions()
    if config.optimization not in _OPT_LEVELS:
        raise RuntimeBackendError(f"unknown optimization level {config.optimization!r}; expected {', '.join(_OPT_LEVELS)}")
    so.graph_optimization_level = _OPT_LEVELS[config.optimization]
    if config.threads is not None and config.threads < 1:
        raise RuntimeBackendError(f"threads must be at least 1, received {config.threads}")
    so.intra_op_num_threads = config.threads or cpu_count()
    so.inter_op_num_threads = 1
    so.log_severity_level = 3  # errors only; placement is reported by node_placement()
    if config.profile_dir:
        so.enable_profiling = True
        so.profile_file_prefix = str(Path(config.profile_dir) / "ort_profile")
    return so


def _provider_list(short: str, config: SessionConfig) -> list[Any]:
    if short == "cuda":
        opts: dict[str, Any] = {
            # The default HEURISTIC search has been reported to pick convolution algorithms
            # several times slower than EXHAUSTIVE for ResNets; the search runs once per shape.
            "cudnn_conv_algo_search": config.cudnn_conv_algo_search,
            "do_copy_in_default_stream": "1",
        }
        if config.cuda_graph:
            opts["enable_cuda_graph"] = "1"
        return [("CUDAExecutionProvider", opts), "CPUExecutionProvider"]
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
        return [("TensorrtExecutionProvider", trt), ("CUDAExecutionProvider", cuda), "CPUExecutionProvider"]
    if short == "openvino" and PROVIDERS["openvino"] in ort.get_available_providers():
        return [("OpenVINOExecutionProvider", _openvino_options(config)), "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def _openvino_options(config: SessionConfig) -> dict[str, str]:
    """OpenVINO EP options. The inference precision is always explicit: on CPUs with AMX,
    OpenVINO's CPU plugin otherwise runs fp32 models in bf16, which a benchmark must not hide."""
    hint = "bf16" if (config.openvino_precision or "").upper() == "BF16" else "f32"
    options = {"device_type": "CPU", "load_config": json.dumps({"CPU": {"INFERENCE_PRECISION_HINT": hint}})}
    if config.threads:
        options["num_of_threads"] = str(config.threads)
    return options


_PRELOADED: list[bool] = []


def _preload_cuda_libraries() -> None:
    """Load CUDA and cuDNN from the ``nvidia-*`` pip packages when they are installed that way
    (onnxruntime >= 1.21), so the CUDA and TensorRT providers find them without LD_LIBRARY_PATH."""
    if not _PRELOADED and hasattr(ort, "preload_dlls"):
        _PRELOADED.append(True)
        try:
            ort.preload_dlls()
        except Exception as exc:  # a system-wide CUDA install does not need it
            warnings.warn(f"onnxruntime.preload_dlls() failed: {first_line(exc)}", RuntimeWarning, stacklevel=3)


def create_session(model: str | Path | bytes, config: SessionConfig | None = None) -> tuple[ort.InferenceSession, str]:
    """Create an ``InferenceSession`` on the configured provider; returns it with the provider's short name."""
    session, short, _ = open_session(model, config)
    return session, short


def open_session(
    model: str | Path | bytes, config: SessionConfig | None = None, *, placement: bool = False
) -> tuple[ort.InferenceSession, str, Counter[str] | None]:
    """:func:`create_session`, plus the node placement when ``placement`` is asked for on an
    accelerator (or needed to verify a plugin EP); it is profiled once and serves both."""
    config = config or SessionConfig()
    short = resolve_provider(config.provider)
    if short in ("cuda", "tensorrt"):
        _preload_cuda_libraries()
    so = _session_options(config)
    source = model if isinstance(model, bytes) else str(model)
    plugin = short == "openvino" and bool(_openvino_plugin_devices())
    try:
        if plugin:
            # The plugin package: attach through the EP-device API (onnxruntime >= 1.22).
            so.add_provider_for_devices(_openvino_plugin_devices()[:1], _openvino_options(config))
            session = ort.InferenceSession(source, sess_options=so)
        else:
            session = ort.InferenceSession(source, sess_options=so, providers=_provider_list(short, config))
    except Exception as exc:  # onnxruntime's pybind errors share no useful base class
        raise RuntimeBackendError(f"onnxruntime could not create a {short} session: {first_line(exc)}") from exc
    counts = None
    if not config.profile_dir and (plugin or (placement and short != "cpu")):
        counts = node_placement(model, config)
    if plugin and counts is not None:
        # Plugin EPs are not listed by get_providers(): check that the plugin really runs nodes.
        if not any(name.startswith("OpenVINO") for name in counts):
            raise ProviderUnavailableError(
                f"the OpenVINO plugin ran no node (placement: {dict(counts)}); refusing to fall back silently"
            )
    elif not plugin and PROVIDERS[short] not in session.get_providers():
        raise ProviderUnavailableError(
            f"onnxruntime did not enable {PROVIDERS[short]} (session providers: "
            f"{', '.join(session.get_providers())}); refusing to fall back silently"
        )
    return session, short, counts


def cpu_count() -> int:
    """Cores this process may run on (the affinity mask, not the host's total)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def node_placement(model: str | Path | bytes, config: SessionConfig | None = None, *, batch: int = 1) -> Counter[str]:
    """How many graph nodes each provider runs, read from an onnxruntime profile of one run."""
    config = config or SessionConfig()
    with tempfile.TemporaryDirectory(prefix="resnet-deploy-profile-") as tmp:
        cfg = SessionConfig(**{**config.__dict__, "profile_dir": tmp, "cuda_graph": False})
        session, _ = create_session(model, cfg)
        feeds = {}
        for inp in session.get_inputs():
            shape = [d if isinstance(d, int) else batch for d in inp.shape]
            feeds[inp.name] = np.zeros(shape, dtype=np.float32)
        session.run(None, feeds)
        profile = session.end_profiling()
        events = json.loads(Path(profile).read_text())
    placement: Counter[str] = Counter()
    seen: set[str] = set()
    for ev in events:
        args = ev.get("args", {})
        if ev.get("cat") == "Node" and "provider" in args and ev["name"] not in seen:
            seen.add(ev["name"])
            placement[args["provider"]] += 1
    return placement


@dataclass(frozen=True)
class Prediction:
    index: int
    label: str
    score: float


_NP_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64}


class Predictor:
    """One onnxruntime session around an exported ResNet, safe to share between threads.

    Args:
        model_path: an ONNX file; validated before onnxruntime sees it.
        provider: ``auto``, ``cpu``, ``cuda``, ``tensorrt`` or ``openvino``.
        threads: intra-op threads (the machine's cores when None).
        config: further session options; ``provider``/``threads`` above take precedence.
        check_placement: warn when onnxruntime assigns nodes to the CPU on an accelerator EP.
    """

    def __init__(
        self,
        model_path: str | Path,
        provider: str = "auto",
        threads: int | None = None,
        *,
        config: SessionConfig | None = None,
        check_placement: bool = True,
    ) -> None:
        self.model_path = Path(model_path)
        model = load_onnx(self.model_path)
        self.metadata = read_metadata(model)
        base = config or SessionConfig()
        cfg = SessionConfig(**{**base.__dict__, "provider": provider, "threads": threads if threads is not None else base.threads})
        self._config = cfg
        self._model_bytes = model.SerializeToString()
        self._session, self.provider, self.placement = open_session(self._model_bytes, cfg, placement=check_placement)
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        if len(inputs) != 1:
            raise InputError(f"{self.model_path} has {len(inputs)} inputs; a Predictor needs one image input")
        self.input_name = inputs[0].name
        self.input_shape: tuple[int | None, ...] = tuple(d if isinstance(d, int) else None for d in inputs[0].shape)
        self.input_dtype = _NP_DTYPES.get(inputs[0].type, np.float32)
        if len(self.input_shape) != 4:
            raise InputError(f"{self.model_path} input {self.input_name!r} has rank {len(self.input_shape)}; expected [N, 3, H, W]")
        self.output_name = outputs[0].name
        self.num_outputs = outputs[0].shape[-1] if outputs[0].shape and isinstance(outputs[0].shape[-1], int) else None
        self.preprocessing = Preprocessing.from_metadata(self.metadata, (self.input_shape[2], self.input_shape[3]))
        self.labels = self._labels(self.num_outputs)
        if self.placement is not None and self.provider != "cpu":
            on_cpu = self.placement.get("CPUExecutionProvider", 0)
            if on_cpu:
                warnings.warn(
                    f"{on_cpu} of {sum(self.placement.values())} nodes of {self.model_path.name} run on "
                    f"CPUExecutionProvider, not {PROVIDERS[self.provider]}",
                    RuntimeWarning,
                    stacklevel=2,
                )
        self._graph_lock = threading.Lock() if cfg.cuda_graph and self.provider == "cuda" else None
        self._graph_state: tuple[Any, ...] | None = None
        self._closed = False

    def _labels(self, width: Any) -> list[str] | None:
        labels = self.metadata.get("labels")
        if isinstance(labels, list) and labels:
            return [str(x) for x in labels]
        classes = self.metadata.get("num_classes", width if isinstance(width, int) else None)
        if classes == 1000:
            return imagenet_labels()
        return None

    # -- life cycle ---------------------------------------------------------------------------
    def close(self) -> None:
        """Release the session; the Predictor cannot be used afterwards."""
        self._closed = True
        self._graph_state = None
        self._session = None  # type: ignore[assignment]

    def __enter__(self) -> "Predictor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- inference ----------------------------------------------------------------------------
    def _check_batch(self, batch: np.ndarray) -> np.ndarray:
        if not isinstance(batch, np.ndarray):
            raise InputError(f"expected a numpy array, received {type(batch).__name__}")
        expected = "[" + ", ".join("N" if d is None else str(d) for d in self.input_shape) + "]"
        if batch.dtype != self.input_dtype:
            raise InputError(f"input dtype {batch.dtype} does not match the model's {np.dtype(self.input_dtype)} {expected}")
        if batch.ndim != 4 or any(d is not None and d != s for d, s in zip(self.input_shape, batch.shape)):
            raise InputError(f"input shape {list(batch.shape)} does not match the model's {expected}")
        if batch.shape[0] == 0:
            raise InputError("empty batch: the first dimension is 0")
        return np.ascontiguousarray(batch)

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Logits for a preprocessed ``[N, 3, H, W]`` batch."""
        if self._closed:
            raise RuntimeBackendError("this Predictor is closed")
        batch = self._check_batch(batch)
        session = self._session
        if self.provider in ("cuda", "tensorrt"):
            return self._run_io_binding(session, batch)
        try:
            return session.run([self.output_name], {self.input_name: batch})[0]
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidArgument types
            raise RuntimeBackendError(f"inference failed: {first_line(exc)}") from exc

    def _run_io_binding(self, session: ort.InferenceSession, batch: np.ndarray) -> np.ndarray:
        """Bind input and output on the GPU, so outputs stay on the device until copied back once."""
        if self._graph_lock is not None:
            return self._run_cuda_graph(session, batch)
        try:
            binding = session.io_binding()
            binding.bind_cpu_input(self.input_name, batch)
            binding.bind_output(self.output_name, "cuda")
            session.run_with_iobinding(binding)
            return binding.copy_outputs_to_cpu()[0]
        except Exception as exc:
            raise RuntimeBackendError(f"inference failed: {first_line(exc)}") from exc

    def _run_cuda_graph(self, session: ort.InferenceSession, batch: np.ndarray) -> np.ndarray:
        """CUDA graphs replay fixed device addresses: one input and one output buffer, updated in place."""
        lock = self._graph_lock
        if lock is None:
            raise RuntimeBackendError("CUDA graphs are not enabled for this Predictor")
        with lock:
            if self._graph_state is None:
                x = ort.OrtValue.ortvalue_from_numpy(batch, "cuda", 0)
                y = ort.OrtValue.ortvalue_from_shape_and_type([batch.shape[0], self.num_outputs], np.float32, "cuda", 0)
                binding = session.io_binding()
                binding.bind_ortvalue_input(self.input_name, x)
                binding.bind_ortvalue_output(self.output_name, y)
                self._graph_state = (batch.shape, x, y, binding)
            shape, x, y, binding = self._graph_state
            if batch.shape != shape:
                raise InputError(f"with CUDA graphs the batch shape is fixed at {list(shape)}; received {list(batch.shape)}")
            try:
                x.update_inplace(batch)
                session.run_with_iobinding(binding)
                return y.numpy()
            except Exception as exc:
                raise RuntimeBackendError(f"inference failed: {first_line(exc)}") from exc

    def preprocess(self, images: Sequence[ImageLike]) -> np.ndarray:
        return self.preprocessing.batch(list(images)).astype(self.input_dtype, copy=False)

    def predict(self, images: ImageLike | Sequence[ImageLike], top_k: int = 5) -> list[list[Prediction]]:
        """Top-k ``(index, label, score)`` per image; score is the softmax probability."""
        if isinstance(images, (str, Path, np.ndarray)) or not isinstance(images, Sequence):
            images = [images]  # type: ignore[list-item]
        if top_k < 1:
            raise InputError(f"top_k must be at least 1, received {top_k}")
        logits = self.run(self.preprocess(images)).astype(np.float64)
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        k = min(top_k, probs.shape[1])
        results = []
        for row in probs:
            top = np.argsort(-row, kind="stable")[:k]
            results.append(
                [Prediction(int(i), self.labels[i] if self.labels else str(int(i)), float(row[i])) for i in top]
            )
        return results
