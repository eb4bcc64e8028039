"""The worker's backends, looked up by an engine's backend kind in :data:`BACKENDS`.

A backend builds one model (or session) from a :class:`~resnet_deploy.bench.schema.WorkerSpec`,
runs it (``infer``) and prepares synchronous timed calls (``timed``): one per request thread,
all sharing that one model. A new runtime (say a native OpenVINO one) is one class here and one
registry entry; engines then name it in :data:`resnet_deploy.bench.plan.CATALOGUE`.

Heavy libraries are imported when a backend is built, never at module level: an onnxruntime
worker must not load torch.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol

import numpy as np

from .schema import WorkerSpec
from .served import TritonClientBackend

__all__ = ["Backend", "BACKENDS", "PyTorchBackend", "OnnxRuntimeBackend", "OpenVINORuntimeBackend"]

Call = Callable[[], None]


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
    """One onnxruntime session; the engine's options are :class:`SessionConfig` fields."""

    def __init__(self, spec: WorkerSpec) -> None:
        from ..runtime import SessionConfig, create_session

        if spec.model_path is None:
            raise ValueError("an onnxruntime engine needs a model file")
        trt_cache = spec.trt_cache_dir if spec.engine.provider == "tensorrt" else None
        if trt_cache is not None:  # marked as the benchmark's, so that --clear-cache knows it
            from .options import TRT_CACHE_KEY, make_cache_entry

            make_cache_entry(trt_cache, TRT_CACHE_KEY)
        options = dict(spec.engine.options)
        # Serving layouts (tune --mode throughput): one session per request thread, each with the
        # worker's share of the threads, as Triton runs one session per model instance.
        self.instances = bool(options.pop("instances", False))
        config = SessionConfig(provider=spec.engine.provider, threads=spec.threads, trt_cache_dir=trt_cache, **options)
        self.session, self.provider = create_session(spec.model_path, config)
        self._new_session = lambda: create_session(spec.model_path, config)[0]  # type: ignore[arg-type]
        self._timed_calls = 0
        self.input = self.session.get_inputs()[0].name
        self.output = self.session.get_outputs()[0].name
        self.gpu = self.provider in ("cuda", "tensorrt")
        self.cuda_graph = bool(spec.engine.options.get("cuda_graph")) and self.provider == "cuda"
        if self.cuda_graph and spec.concurrency > 1:
            raise ValueError("a CUDA graph replays one captured run at a time: concurrency 1 only")
        self._graph: tuple[Any, Any, Any] | None = None
        self.device = "cuda"  # where the CUDA graph's buffers live (a test runs the binding logic on "cpu")

    def _graph_binding(self, x: np.ndarray) -> tuple[Any, Any, Any]:
        """CUDA graphs replay fixed device addresses: one input and one output buffer, bound once
        (onnxruntime captures the graph on a regular run after its warm-up runs)."""
        if self._graph is None:
            import onnxruntime as ort

            from ..runtime.session import _NP_DTYPES

            output = self.session.get_outputs()[0]
            out_shape = [x.shape[0], *output.shape[1:]]
            if not all(isinstance(d, int) for d in out_shape) or output.type not in _NP_DTYPES:
                raise ValueError(f"a CUDA graph needs a float output of a fixed shape; {self.output!r} is {output.type} {output.shape}")
            x_dev = ort.OrtValue.ortvalue_from_numpy(x, self.device, 0)
            y_dev = ort.OrtValue.ortvalue_from_shape_and_type(out_shape, _NP_DTYPES[output.type], self.device, 0)
            binding = self.session.io_binding()
            binding.bind_ortvalue_input(self.input, x_dev)
            binding.bind_ortvalue_output(self.output, y_dev)
            self._graph = (x_dev, y_dev, binding)
        return self._graph

    def infer(self, x: np.ndarray) -> np.ndarray:
        if self.cuda_graph:
            x_dev, y_dev, binding = self._graph_binding(x)
            x_dev.update_inplace(x)
            binding.synchronize_inputs()  # the copy runs on the legacy default stream, the graph on onnxruntime's own
            self.session.run_with_iobinding(binding)
            return np.asarray(y_dev.numpy(), dtype=np.float32)
        return np.asarray(self.session.run([self.output], {self.input: x})[0], dtype=np.float32)

    def timed(self, x: np.ndarray) -> Call:
        if self.cuda_graph:
            _, _, graph_binding = self._graph_binding(x)

            def replay() -> None:
                self.session.run_with_iobinding(graph_binding)
                graph_binding.synchronize_outputs()

            return replay
        if not self.gpu:
            feeds = {self.input: x}
            session, outputs = self.session, [self.output]
            if self.instances and self._timed_calls:  # the first request thread keeps the first session
                session = self._new_session()
            self._timed_calls += 1

            def run_cpu() -> None:
                session.run(outputs, feeds)

            return run_cpu
        import onnxruntime as ort

        # IO binding: the input is on the device before timing; the output stays there. One
        # binding per call, so that concurrent request threads never share one.
        x_dev = ort.OrtValue.ortvalue_from_numpy(x, "cuda", 0)
        binding = self.session.io_binding()
        binding.bind_ortvalue_input(self.input, x_dev)
        binding.bind_output(self.output, "cuda")

        def run() -> None:
            self.session.run_with_iobinding(binding)
            binding.synchronize_outputs()

        return run


class OpenVINORuntimeBackend:
    """The OpenVINO runtime itself (:class:`~resnet_deploy.runtime.openvino_native.OpenVINOSession`).

    Options: ``hint`` (``fp32``/``bf16`` inference precision) and ``static`` (compile for the
    measured batch size only). Under concurrent requests OpenVINO runs one stream per request
    thread and divides the worker's threads between them itself.
    """

    OPTIONS = frozenset({"hint", "static", "instances"})  # instances: OpenVINO's streams already are

    def __init__(self, spec: WorkerSpec) -> None:
        from ..runtime.openvino_native import OpenVINOSession

        _check_options(spec, self.OPTIONS)
        if spec.model_path is None:
            raise ValueError("an openvino engine needs a model file")
        options = spec.engine.options
        self.session = OpenVINOSession(
            spec.model_path,
            threads=spec.threads * spec.concurrency,
            precision=options.get("hint", "fp32"),
            batch=spec.batch_size if options.get("static") else None,
            streams=spec.concurrency,
        )
        self.input = self.session.get_inputs()[0].name
        self.output = self.session.get_outputs()[0].name

    def infer(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.session.run([self.output], {self.input: x})[0], dtype=np.float32)

    def timed(self, x: np.ndarray) -> Call:
        feeds, session, outputs = {self.input: x}, self.session, [self.output]
        return lambda: session.run(outputs, feeds)


BACKENDS: dict[str, type] = {
    "pytorch": PyTorchBackend,
    "onnxruntime": OnnxRuntimeBackend,
    "openvino": OpenVINORuntimeBackend,
    "triton": TritonClientBackend,  # a model served by Triton (bench --url): the client side
}
