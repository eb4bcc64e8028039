"""The one execution path: how a session runs a batch, for :class:`Predictor` and the benchmark.

:class:`Execution` owns what used to be written once in ``Predictor`` and again in the bench's
onnxruntime backend, so the benchmark times the code a deployment runs:

- fixed-batch chunking: a model compiled for batch B (OpenVINO's static batch, a static export)
  runs any N in chunks of B, the last padded with copies of its final row, the padding dropped;
- the CPU (and the OpenVINO runtime): ``session.run``;
- CUDA and TensorRT: IO binding, the output left on the device and copied back once;
- CUDA graphs: one input and one output buffer, sized by the first call's batch and updated in
  place; other batch sizes run in chunks of that size;
- :meth:`Execution.timed`: the call the benchmark times, which is :meth:`Execution.run` itself
  (host input in, host output back, every copy a deployment pays);
- :func:`batched_outputs`: a model's outputs on many rows on the CPU provider, the way every
  verification (export, optimize, quantize, sensitivity, tune) runs a model; :func:`cpu_logits`
  the same as deployed, in bounded pieces (INT8 judged on its integer kernels).

Closing is safe while other threads run: a run in progress finishes on the session it holds and
every later call (the next chunk included) raises ``closed_message``.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

import numpy as np

from .._errors import InputError, RuntimeBackendError, first_line
from .config import GPU_PROVIDERS, ORT_NUMPY_TYPES

__all__ = ["Execution", "chunks", "batched_outputs", "cpu_logits", "CPU_PIECE"]


# After a batch this large, onnxruntime's CPU arena gives back what the run grew it by: a served
# model that met one 200 MB request would otherwise hold its peak (3 GB) for good. Below it, the
# arena keeps its memory, as a steady stream of batches wants (the benchmark's sizes stay below).
SHRINK_AFTER_BYTES = 32 * 2**20


def _shrink_arena() -> object:
    import onnxruntime as ort

    options = ort.RunOptions()
    options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
    return options


def chunks(batch: np.ndarray, size: int) -> list[tuple[np.ndarray, int]]:
    """``batch`` in pieces of exactly ``size`` rows, the last padded with copies of its final row;
    each piece with the number of its real rows."""
    out = []
    for start in range(0, batch.shape[0], size):
        chunk = batch[start : start + size]
        n = chunk.shape[0]
        if n < size:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], size - n, axis=0)])
        out.append((np.ascontiguousarray(chunk), n))
    return out


class Execution:
    """Runs one session on batches (see the module's docstring).

    Args:
        session: an onnxruntime ``InferenceSession`` or the OpenVINO runtime's session.
        provider: the short name it runs on (``cpu``, ``cuda``, ``tensorrt``, ``openvino``).
        fixed_batch: the batch the model is compiled for, or None for a dynamic batch.
        cuda_graph: replay a captured CUDA graph (provider ``cuda`` only).
        device: where device buffers live; ``cuda``, or ``cpu`` for a test of the binding logic.
    """

    def __init__(self, session: Any, provider: str, *, input_name: str, output_name: str, input_dtype: np.dtype,
                 fixed_batch: int | None = None, cuda_graph: bool = False, device: str = "cuda",
                 closed_message: str = "this session is closed") -> None:
        self._session = session
        self.provider = provider
        self.input_name, self.output_name, self.input_dtype = input_name, output_name, np.dtype(input_dtype)
        self.fixed_batch = fixed_batch
        self.cuda_graph = cuda_graph and provider == "cuda"
        self.device = device
        self.closed_message = closed_message
        self._graph_lock = threading.Lock()
        self._graph: tuple[tuple[int, ...], Any, Any, Any] | None = None  # shape, input, output, binding

    # -- life cycle ---------------------------------------------------------------------------
    @property
    def session(self) -> Any:
        """The session, read once per use: a closed one is refused, never called."""
        session = self._session
        if session is None:
            raise RuntimeBackendError(self.closed_message)
        return session

    @property
    def closed(self) -> bool:
        return self._session is None

    def close(self) -> None:
        with self._graph_lock:  # not while a CUDA graph replays on its buffers
            self._graph = None
            self._session = None

    @property
    def graph_shape(self) -> tuple[int, ...] | None:
        """The batch shape the CUDA graph was captured for, once it has been."""
        return self._graph[0] if self._graph is not None else None

    # -- running ------------------------------------------------------------------------------
    def run(self, batch: np.ndarray, *, session: Any = None, shrink: bool = False) -> np.ndarray:
        """The first output for ``batch`` (contiguous, of the model's input type), on the host.
        ``session`` replaces this one's (a benchmark request thread with a session of its own, as
        a served instance has); not with a CUDA graph, which is captured on this one's. ``shrink``:
        the CPU arena gives back what the run grew it by, as after a batch over SHRINK_AFTER_BYTES."""
        if session is not None and self.cuda_graph:
            raise RuntimeBackendError("a CUDA graph replays on the session it was captured on")
        if self.fixed_batch is None or batch.shape[0] == self.fixed_batch:
            return self._run_one(batch, session, shrink)
        return np.concatenate([self._run_one(chunk, session, shrink)[:n]
                               for chunk, n in chunks(batch, self.fixed_batch)])

    def _run_one(self, batch: np.ndarray, own: Any = None, shrink: bool = False) -> np.ndarray:
        session = own if own is not None else self.session
        if self.cuda_graph:
            return self._run_graph(batch)
        try:
            if self.provider in GPU_PROVIDERS:  # output stays on the device until copied back once
                binding = session.io_binding()
                binding.bind_cpu_input(self.input_name, batch)
                binding.bind_output(self.output_name, self.device)
                session.run_with_iobinding(binding)
                return binding.copy_outputs_to_cpu()[0]
            if (shrink or batch.nbytes > SHRINK_AFTER_BYTES) and self.provider != "openvino":
                return session.run([self.output_name], {self.input_name: batch}, _shrink_arena())[0]
            return session.run([self.output_name], {self.input_name: batch})[0]
        except Exception as exc:  # onnxruntime and OpenVINO raise their own types
            raise RuntimeBackendError(f"inference failed: {first_line(exc)}") from exc

    def _run_graph(self, batch: np.ndarray) -> np.ndarray:
        """Replay the CUDA graph on ``batch``, in chunks of the captured batch size."""
        with self._graph_lock:
            session = self.session
            shape, x, y, binding = self._captured(session, batch.shape)
            if batch.shape[1:] != shape[1:]:
                raise InputError(f"with CUDA graphs the image shape is fixed at {list(shape[1:])}; "
                                 f"received {list(batch.shape)}")
            outputs = []
            try:
                for chunk, n in chunks(batch, shape[0]):
                    x.update_inplace(chunk)
                    # update_inplace copies with cudaMemcpy on the legacy default stream, which may
                    # return before a pageable copy has landed; the graph replays on onnxruntime's
                    # own non-blocking stream. Wait for the copy first.
                    binding.synchronize_inputs()
                    session.run_with_iobinding(binding)
                    outputs.append(np.array(y.numpy()[:n]))
            except Exception as exc:
                raise RuntimeBackendError(f"inference failed: {first_line(exc)}") from exc
            return outputs[0] if len(outputs) == 1 else np.concatenate(outputs)

    def _captured(self, session: Any, shape: tuple[int, ...]) -> tuple[tuple[int, ...], Any, Any, Any]:
        """The device input and output a CUDA graph is captured on, and their binding (made once)."""
        if self._graph is None:
            import onnxruntime as ort

            output = session.get_outputs()[0]
            out_shape = [shape[0], *output.shape[1:]]
            dtype = ORT_NUMPY_TYPES.get(output.type)
            if not all(isinstance(d, int) for d in out_shape) or dtype is None:
                raise RuntimeBackendError(
                    f"CUDA graphs need output buffers of a fixed shape and a float type; {self.output_name!r} is "
                    f"{output.type} {output.shape}: use a model with a static output shape, or cuda_graph=False")
            x = ort.OrtValue.ortvalue_from_shape_and_type(list(shape), self.input_dtype, self.device, 0)
            y = ort.OrtValue.ortvalue_from_shape_and_type(out_shape, dtype, self.device, 0)
            binding = session.io_binding()
            binding.bind_ortvalue_input(self.input_name, x)
            binding.bind_ortvalue_output(self.output_name, y)
            self._graph = (tuple(shape), x, y, binding)
        return self._graph

    # -- what the benchmark times -------------------------------------------------------------
    def timed(self, batch: np.ndarray, *, session: Any = None) -> Callable[[], np.ndarray]:
        """The call the benchmark times: :meth:`run` on ``batch``, exactly as :class:`Predictor`
        makes it (on a GPU: the host-to-device copy, the run, the copy back). Nothing is
        prepared outside the timed call, so the number is the one a deployment gets."""
        batch = np.ascontiguousarray(batch)
        return lambda: self.run(batch, session=session)


def batched_outputs(model: Any, x: np.ndarray, *, threads: int | None = None, optimization: str = "all",
                    piece: int | None = None) -> np.ndarray:
    """The first output of ``model`` (a ModelProto or its bytes) for every row of ``x``, on
    onnxruntime's CPU provider, through :class:`Execution`: a fixed-batch model in chunks of its
    batch, a dynamic one at once or, with ``piece``, that many rows at a time (bounded memory).
    ``optimization="disable"`` tests the graph as written; ``"all"`` runs it as deployed."""
    from .config import SessionConfig
    from .session import create_session

    data = model if isinstance(model, bytes) else model.SerializeToString()
    session, _ = create_session(data, SessionConfig(provider="cpu", threads=threads, optimization=optimization))
    first = session.get_inputs()[0]
    fixed = first.shape[0] if first.shape and isinstance(first.shape[0], int) else None
    execution = Execution(session, "cpu", input_name=first.name, output_name=session.get_outputs()[0].name,
                          input_dtype=x.dtype, fixed_batch=fixed)
    if fixed is not None or piece is None or len(x) <= piece:
        return execution.run(np.ascontiguousarray(x))
    return np.concatenate([execution.run(np.ascontiguousarray(x[i : i + piece])) for i in range(0, len(x), piece)])


CPU_PIECE = 256  # rows per run of cpu_logits: memory bounded whatever the number of samples


def cpu_logits(model: Any, x: np.ndarray, threads: int | None = None) -> np.ndarray:
    """``model``'s first output as deployed: onnxruntime's CPU provider with every optimization
    (the QLinearConv kernels of this CPU for an INT8 file), :data:`CPU_PIECE` rows at a time."""
    return batched_outputs(model, x, threads=threads, piece=CPU_PIECE)
