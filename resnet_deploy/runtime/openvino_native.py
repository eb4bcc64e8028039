"""The OpenVINO runtime itself on an exported ONNX file, where onnxruntime's plugin has no device.

The ``onnxruntime-ep-openvino`` plugin enumerates Intel devices only (an upstream vendor filter;
onnxruntime PR #31981), so on AMD CPUs it offers nothing although OpenVINO's CPU plugin runs
there and is the fastest path we measured (ResNet-50, INT8 QDQ with a static batch). This module
gives OpenVINO's runtime the slice of ``onnxruntime.InferenceSession`` that the Predictor and the
benchmark use (``get_inputs``, ``get_outputs``, ``run``), so the same input checks, parity checks
and no-silent-fallback rule apply to it. It imports ``openvino`` only when a session is created.
"""

from __future__ import annotations

import functools
import queue
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .._errors import ProviderUnavailableError, RuntimeBackendError, first_line

__all__ = ["OpenVINOSession", "native_openvino_available", "OV_PRECISIONS"]

# Our precision names -> OpenVINO's INFERENCE_PRECISION_HINT. The hint is always explicit: on
# CPUs with AMX OpenVINO otherwise runs fp32 models in bf16, which must never be hidden. INT8
# is not a hint: it comes from a QDQ file, which OpenVINO executes with int8 kernels (the
# layers left in float run at the hint's precision).
OV_PRECISIONS = {"fp32": "f32", "bf16": "bf16"}
_ONNX_TYPES = {"f32": "tensor(float)", "f16": "tensor(float16)", "f64": "tensor(double)", "i64": "tensor(int64)"}


@dataclass(frozen=True)
class OVArg:
    """An input or output as onnxruntime's ``NodeArg`` describes it (name, shape, type)."""

    name: str
    shape: list[int | str]
    type: str


def _openvino() -> Any:
    try:
        import openvino
    except ImportError as exc:
        raise ProviderUnavailableError(
            "the OpenVINO runtime is not installed: pip install 'resnet-deploy[openvino]'"
        ) from exc
    return openvino


@functools.lru_cache(maxsize=None)
def native_openvino_available() -> bool:
    """True when the ``openvino`` package is importable and lists a CPU device (asked once)."""
    try:
        import openvino
    except ImportError:
        return False
    try:
        return "CPU" in openvino.Core().available_devices
    except Exception:  # a broken install is "not available", reported by name when asked for
        return False


def _describe(port: Any) -> OVArg:
    dims: list[int | str] = []
    for i, d in enumerate(port.get_partial_shape()):
        dims.append(d.get_length() if d.is_static else ("batch" if i == 0 else f"d{i}"))
    kind = port.get_element_type().get_type_name()
    return OVArg(port.any_name, dims, _ONNX_TYPES.get(kind, f"tensor({kind})"))


class OpenVINOSession:
    """An OpenVINO ``CompiledModel`` on the CPU behind an ``InferenceSession``-like surface.

    Args:
        model: an ONNX file or its serialised bytes (external data must be inlined for bytes).
        threads: ``INFERENCE_NUM_THREADS`` (OpenVINO's default, all cores, when None).
        precision: ``fp32`` (f32 hint) or ``bf16`` (bf16 hint, on CPUs with AVX512-BF16 or
            AMX). An INT8 QDQ file runs in int8 under either.
        batch: fix a symbolic batch dimension to this size before compiling. Static shapes
            let OpenVINO pick kernels and memory once (measured faster at batch 1).
        streams: parallel inference streams; 1 for latency, more for throughput under
            concurrent requests (threads are divided between streams by OpenVINO).

    Safe to share between threads: each call borrows an infer request from a pool.
    """

    def __init__(
        self,
        model: str | Path | bytes,
        *,
        threads: int | None = None,
        precision: str = "fp32",
        batch: int | None = None,
        streams: int = 1,
    ) -> None:
        if precision not in OV_PRECISIONS:
            raise RuntimeBackendError(f"unknown OpenVINO precision {precision!r}; expected {', '.join(OV_PRECISIONS)}")
        if threads is not None and threads < 1:
            raise RuntimeBackendError(f"threads must be at least 1, received {threads}")
        if streams < 1:
            raise RuntimeBackendError(f"streams must be at least 1, received {streams}")
        ov = _openvino()
        core = ov.Core()
        if "CPU" not in core.available_devices:
            raise ProviderUnavailableError("OpenVINO lists no CPU device on this machine")
        try:
            ov_model = (core.read_model(model=model, weights=None) if isinstance(model, bytes)
                        else core.read_model(str(model)))
            if batch is not None:
                ov_model.reshape({p.any_name: _with_batch(p, batch) for p in ov_model.inputs})
            config: dict[str, Any] = {
                "INFERENCE_PRECISION_HINT": OV_PRECISIONS[precision],
                "PERFORMANCE_HINT": "LATENCY" if streams == 1 else "THROUGHPUT",
                "NUM_STREAMS": streams,
            }
            if threads is not None:
                config["INFERENCE_NUM_THREADS"] = threads
            self._compiled = core.compile_model(ov_model, "CPU", config)
        except Exception as exc:  # OpenVINO raises RuntimeError with pages of context
            raise RuntimeBackendError(f"OpenVINO could not compile the model: {first_line(exc)}") from exc
        devices = list(self._compiled.get_property("EXECUTION_DEVICES"))
        if not devices or not all(d.startswith("CPU") for d in devices):
            raise ProviderUnavailableError(f"OpenVINO compiled the model for {devices}, not the CPU; refusing it")
        self.execution_devices = devices
        self.precision = precision
        self.streams = int(self._compiled.get_property("NUM_STREAMS"))
        self.threads = int(self._compiled.get_property("INFERENCE_NUM_THREADS"))
        self._inputs = [_describe(p) for p in self._compiled.inputs]
        self._outputs = [_describe(p) for p in self._compiled.outputs]
        self._requests: queue.SimpleQueue[Any] = queue.SimpleQueue()

    def get_inputs(self) -> list[OVArg]:
        return list(self._inputs)

    def get_outputs(self) -> list[OVArg]:
        return list(self._outputs)

    def get_providers(self) -> list[str]:
        return ["OpenVINORuntime"]

    def run(self, output_names: Sequence[str] | None, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Synchronous inference, as ``InferenceSession.run``: outputs in the order asked for."""
        try:
            request = self._requests.get_nowait()
        except queue.Empty:
            request = self._compiled.create_infer_request()
        try:
            # share_inputs avoids a copy (the call is synchronous); outputs are copied out of
            # the request's buffers before the request goes back to the pool.
            result = request.infer(feeds, share_inputs=True, share_outputs=False)
            by_name = {port.any_name: value for port, value in result.items()}
        except Exception as exc:
            raise RuntimeBackendError(f"OpenVINO inference failed: {first_line(exc)}") from exc
        finally:
            self._requests.put(request)
        names = output_names or [o.name for o in self._outputs]
        return [np.asarray(by_name[n]) for n in names]


def _with_batch(port: Any, batch: int) -> list[int]:
    shape = port.get_partial_shape()
    first = shape[0]
    if first.is_static and first.get_length() != batch:
        raise RuntimeBackendError(
            f"the model's batch is fixed at {first.get_length()}; cannot compile it for batch {batch}"
        )
    return [batch] + [d.get_length() for d in list(shape)[1:]]
