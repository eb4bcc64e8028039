"""The worker's backends, looked up by an engine's backend kind in :data:`BACKENDS`.

A backend builds one model (or session) from a :class:`~resnet_deploy.bench.schema.WorkerSpec`,
runs it (``infer``) and prepares synchronous timed calls (``timed``): one per request thread,
all sharing that one model. A new runtime (say a native OpenVINO one) is one class here and one
registry entry; engines then name it in :data:`resnet_deploy.bench.catalogue.CATALOGUE`.

Heavy libraries are imported when a backend is built, never at module level: an onnxruntime
worker must not load torch.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable, Protocol

import numpy as np

from .catalogue import LAYOUT_OPTIONS, OPENVINO_RUNTIME, session_config
from .schema import WorkerSpec
from .served import TritonClientBackend

__all__ = ["Backend", "BACKENDS", "PyTorchBackend", "OnnxRuntimeBackend", "OpenVINORuntimeBackend"]

Call = Callable[[], object]


class Backend(Protocol):
    def __init__(self, spec: WorkerSpec) -> None: ...

    def infer(self, x: np.ndarray) -> np.ndarray:
        """Outputs for ``x`` as a float32 numpy array."""

    def timed(self, x: np.ndarray) -> Call:
        """A synchronous call on ``x`` prepared for timing (inputs already where they run)."""


def _check_options(spec: WorkerSpec, allowed: frozenset[str]) -> None:
    unknown = set(spec.engine.options) - allowed
    if unknown:
        raise ValueError(f"unknown {spec.engine.backend} option(s) {sorted(unknown)}; expected {sorted(allowed)}")


class PyTorchBackend:
    """Eager PyTorch (optionally channels_last, autocast, ``torch.compile``) on the CPU or a GPU."""

    OPTIONS = frozenset({"memory_format", "autocast", "compile", "cuda_graph"})

    def __init__(self, spec: WorkerSpec) -> None:
        import torch

        from ..models import create_model

        _check_options(spec, self.OPTIONS)
        if spec.architecture is None:
            raise ValueError("a pytorch engine needs an architecture")
        options = spec.engine.options
        self.torch = torch
        torch.set_num_threads(spec.threads)
        self.device = "cuda" if spec.engine.provider == "cuda" else "cpu"
        model = create_model(spec.architecture, num_classes=spec.num_classes, weights=spec.weights).to(self.device)
        self.channels_last = options.get("memory_format") == "channels_last"
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = torch.compile(model) if options.get("compile") else model
        autocast = options.get("autocast")
        self.dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, None: None}[autocast]
        self.cuda_graph = bool(options.get("cuda_graph"))
        if self.cuda_graph and (self.device != "cuda" or spec.concurrency > 1):
            raise ValueError("a CUDA graph needs the cuda provider and concurrency 1")
        self._graph: tuple[Any, Any, Any] | None = None

    def _captured(self, x: np.ndarray) -> tuple[Any, Any, Any]:
        """What a PyTorch user writes for the fastest fixed-shape GPU inference: warm up on a side
        stream, capture one forward pass into a CUDA graph, replay it on a static input buffer
        (https://pytorch.org/docs/stable/notes/cuda.html#cuda-graphs)."""
        if self._graph is None:
            torch = self.torch
            static_x = self._to_device(x)
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                for _ in range(3):
                    self._forward(static_x, cache=False)
            torch.cuda.current_stream().wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                static_out = self._forward(static_x, cache=False, sync=False)
            self._graph = (graph, static_x, static_out)
        return self._graph

    def _to_device(self, x: np.ndarray) -> Any:
        t = self.torch.from_numpy(x).to(self.device)
        return t.contiguous(memory_format=self.torch.channels_last) if self.channels_last else t

    def _forward(self, t: Any, *, cache: bool = True, sync: bool = True) -> Any:
        with self.torch.inference_mode():
            if self.dtype is not None:
                # A captured graph must not reuse autocast's cast cache across captures.
                with self.torch.autocast(device_type=self.device, dtype=self.dtype, cache_enabled=cache):
                    out = self.model(t)
            else:
                out = self.model(t)
        if self.device == "cuda" and sync:
            self.torch.cuda.synchronize()  # time the work, not the launch
        return out

    def infer(self, x: np.ndarray) -> np.ndarray:
        if self.cuda_graph:
            graph, static_x, static_out = self._captured(x)
            static_x.copy_(self._to_device(x))
            graph.replay()
            self.torch.cuda.synchronize()
            return static_out.float().cpu().numpy()
        return self._forward(self._to_device(x)).float().cpu().numpy()

    def timed(self, x: np.ndarray) -> Call:
        if self.cuda_graph:
            graph = self._captured(x)[0]
            torch = self.torch

            def replay() -> None:
                graph.replay()
                torch.cuda.synchronize()

            return replay
        t = self._to_device(x)
        return lambda: self._forward(t)


class OnnxRuntimeBackend:
    """One onnxruntime session, run by :class:`~resnet_deploy.runtime.execution.Execution`: the
    code a :class:`Predictor` deploys. The engine's options are :class:`SessionConfig` fields
    (:func:`~resnet_deploy.bench.catalogue.session_config`), and ``instances`` (one session per
    request thread, as Triton runs one per model instance)."""

    def __init__(self, spec: WorkerSpec) -> None:
        from ..runtime import create_session
        from ..runtime.execution import Execution

        if spec.model_path is None:
            raise ValueError("an onnxruntime engine needs a model file")
        trt_cache = spec.trt_cache_dir if spec.engine.provider == "tensorrt" else None
        if trt_cache is not None:  # marked as the benchmark's, so that --clear-cache knows it
            from .cache import TRT_CACHE_KEY, make_cache_entry

            make_cache_entry(trt_cache, TRT_CACHE_KEY)
        # Serving layouts (tune --mode throughput): one session per request thread, each with the
        # worker's share of the threads.
        self.instances = bool(spec.engine.options.get("instances", False))
        config = replace(session_config(spec.engine, batch=spec.batch_size, threads=spec.threads),
                         trt_cache_dir=trt_cache)
        session, provider = create_session(spec.model_path, config)
        self._new_session = lambda: create_session(spec.model_path, config)[0]  # type: ignore[arg-type]
        self._timed_calls = 0
        first = session.get_inputs()[0]  # a fixed batch runs in chunks of it, as Predictor runs it
        self.execution = Execution(session, provider, input_name=first.name, output_name=session.get_outputs()[0].name,
                                   input_dtype=_input_dtype(session), cuda_graph=bool(config.cuda_graph),
                                   fixed_batch=(first.shape[0] if first.shape and isinstance(first.shape[0], int)
                                                else None))
        if self.execution.cuda_graph and spec.concurrency > 1:
            raise ValueError("a CUDA graph replays one captured run at a time: concurrency 1 only")

    def infer(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.execution.run(x), dtype=np.float32)

    def timed(self, x: np.ndarray) -> Call:
        own = None
        if self.instances and self._timed_calls and not self.execution.cuda_graph:
            own = self._new_session()  # the first request thread keeps the first session
        self._timed_calls += 1
        return self.execution.timed(x, session=own)


class OpenVINORuntimeBackend:
    """The OpenVINO runtime itself (:class:`~resnet_deploy.runtime.openvino_native.OpenVINOSession`),
    opened by :func:`~resnet_deploy.runtime.session.open_openvino_runtime` from a
    :class:`SessionConfig` and run by :class:`~resnet_deploy.runtime.execution.Execution`: the
    session a Predictor deploys, with the worker's threads.

    Options: the :class:`SessionConfig` fields the OpenVINO runtime reads (``openvino_precision``,
    ``static_batch``: ``True`` compiles for the measured batch size only, ``streams``) and
    ``instances`` (one session per request thread, as Triton runs one Predictor per model instance).
    """

    OPTIONS = frozenset({"openvino_precision", "static_batch", "streams"}) | LAYOUT_OPTIONS

    def __init__(self, spec: WorkerSpec) -> None:
        from ..runtime.execution import Execution
        from ..runtime.session import open_openvino_runtime

        _check_options(spec, self.OPTIONS)
        if spec.model_path is None:
            raise ValueError("an openvino engine needs a model file")
        self.instances = bool(spec.engine.options.get("instances", False))
        config = session_config(spec.engine, batch=spec.batch_size, threads=spec.threads)
        session = open_openvino_runtime(spec.model_path, config)
        self._new_session = lambda: open_openvino_runtime(spec.model_path, config)  # type: ignore[arg-type]
        self._timed_calls = 0
        self.execution = Execution(session, "openvino", input_name=session.get_inputs()[0].name,
                                   output_name=session.get_outputs()[0].name, input_dtype=_input_dtype(session),
                                   fixed_batch=config.static_batch)

    def infer(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.execution.run(x), dtype=np.float32)

    def timed(self, x: np.ndarray) -> Call:
        own = self._new_session() if self.instances and self._timed_calls else None
        self._timed_calls += 1
        return self.execution.timed(x, session=own)


def _input_dtype(session: Any) -> np.dtype:
    """The numpy type of a session's first input (``tensor(float)`` -> float32)."""
    from ..runtime.config import ORT_NUMPY_TYPES

    return np.dtype(ORT_NUMPY_TYPES.get(session.get_inputs()[0].type, np.float32))


BACKENDS: dict[str, type] = {
    "pytorch": PyTorchBackend,
    "onnxruntime": OnnxRuntimeBackend,
    OPENVINO_RUNTIME: OpenVINORuntimeBackend,
    "triton": TritonClientBackend,  # a model served by Triton (bench --url): the client side
}
