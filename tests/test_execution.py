"""One execution core: Predictor and the benchmark's backends run batches through the same code."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from resnet_deploy.bench.backends import OnnxRuntimeBackend, OpenVINORuntimeBackend
from resnet_deploy.bench.schema import Engine, WorkerSpec
from resnet_deploy.runtime import Predictor
from resnet_deploy.runtime.execution import Execution, chunks
from resnet_deploy.graph.verify import compare

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _spec(tmp_path: Path, model: Path, backend: str, provider: str, options: dict[str, Any] | None = None) -> WorkerSpec:
    return WorkerSpec(Engine("e", backend, provider, "fp32", str(model), options or {}), 2, 1, 1,
                      str(tmp_path / "x.npy"), str(tmp_path / "y.npy"), 0, model_path=str(model))


def _counting(monkeypatch: pytest.MonkeyPatch, name: str) -> list[str]:
    """Wrap the real ``Execution.<name>`` so that every call through it is recorded (it still runs)."""
    calls: list[str] = []
    real: Callable[..., Any] = getattr(Execution, name)

    def wrapped(self: Execution, *args: Any, **kwargs: Any) -> Any:
        calls.append(self.provider)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Execution, name, wrapped)
    return calls


def test_predictor_and_bench_backends_run_through_execution(resnet20_onnx: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    runs, prepared = _counting(monkeypatch, "run"), _counting(monkeypatch, "prepare")
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32), dtype=np.float32)
    with Predictor(resnet20_onnx, provider="cpu") as predictor:
        deployed = predictor.run(x)
    backends = [OnnxRuntimeBackend(_spec(tmp_path, resnet20_onnx, "onnxruntime", "cpu"))]
    try:
        backends.append(OpenVINORuntimeBackend(_spec(tmp_path, resnet20_onnx, "openvino", "openvino")))
    except Exception as exc:  # noqa: BLE001 - the OpenVINO runtime is optional
        print(f"OpenVINO runtime not measured here: {exc}")
    for backend in backends:
        assert type(backend.execution) is type(predictor._execution)  # noqa: SLF001
        np.testing.assert_allclose(backend.infer(x), deployed, rtol=1e-4, atol=1e-5)
        backend.timed(x)()
    assert runs == ["cpu", "cpu", *(["openvino"] if len(backends) == 2 else [])]
    assert prepared == runs[1:]


@pytest.mark.parametrize("cuda_graph", [False, True])
def test_the_gpu_paths_on_cpu_buffers(resnet20_onnx: Path, tmp_path: Path, cuda_graph: bool) -> None:
    """IO binding and CUDA-graph capture/replay, with the device buffers on the CPU: the same
    Execution code for a Predictor and for the benchmark's timed call, equal to a plain run."""
    x = np.random.default_rng(1).standard_normal((5, 3, 32, 32), dtype=np.float32)
    with Predictor(resnet20_onnx, provider="cpu") as predictor:
        reference = predictor.run(x)
        e = predictor._execution  # noqa: SLF001
        gpu = Execution(e.session, "cuda", input_name=e.input_name, output_name=e.output_name, input_dtype=e.input_dtype,
                        cuda_graph=cuda_graph, device="cpu")
        assert compare(gpu.run(x[:2]), reference[:2]).ok and compare(gpu.run(x), reference).ok  # chunks of 2 with a graph
        gpu.prepare(x[:2])()
        assert gpu.graph_shape == ((2, 3, 32, 32) if cuda_graph else None)
        gpu.close()
        with pytest.raises(Exception, match="closed"):
            gpu.run(x)


def test_fixed_batch_chunks_pad_with_the_last_row() -> None:
    x = np.arange(5, dtype=np.float32)[:, None]
    pieces = chunks(x, 2)
    assert [n for _, n in pieces] == [2, 2, 1]
    assert pieces[-1][0][:, 0].tolist() == [4.0, 4.0]
