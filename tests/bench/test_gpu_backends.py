"""The benchmark's CUDA-graph backends on a GPU: what the CUDA engines of ``bench`` and ``tune``
run, checked for their outputs (not timed) before a long benchmark depends on them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from resnet_deploy.bench.backends import OnnxRuntimeBackend, PyTorchBackend
from resnet_deploy.bench.schema import Engine, WorkerSpec
from resnet_deploy.graph.verify import compare

HAS_CUDA = "CUDAExecutionProvider" in ort.get_available_providers()


def _torch_cuda() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:
        return False


def _spec(tmp_path: Path, engine: Engine, batch: int, **kwargs: object) -> WorkerSpec:
    return WorkerSpec(engine, batch, 1, 1, str(tmp_path / "x.npy"), str(tmp_path / "y.npy"), 1, **kwargs)  # type: ignore[arg-type]


def _eager(x: np.ndarray) -> np.ndarray:
    import torch

    import resnet_deploy as rd

    with torch.inference_mode():
        return rd.create_model("resnet18")(torch.from_numpy(x)).numpy()


def _replays_match_eager(backend: PyTorchBackend | OnnxRuntimeBackend, rtol: float, label: str) -> None:
    """The warm-up/capture run, the timed replay, then a replay on a new input copied into the
    captured buffer: each output matches eager fp32."""
    rng = np.random.default_rng(4)
    a, b = (rng.standard_normal((2, 3, 224, 224), dtype=np.float32) for _ in range(2))
    out_a = backend.infer(a)
    backend.timed(a)()
    out_b = backend.infer(b)
    for out, x in [(out_a, a), (out_b, b)]:
        parity = compare(out, _eager(x), rtol=rtol)
        print(label, parity.describe())
        assert parity.ok


@pytest.mark.gpu
@pytest.mark.skipif(not _torch_cuda(), reason="needs torch with CUDA and a GPU")
def test_pytorch_fp16_cuda_graph(tmp_path: Path) -> None:
    """pytorch-cuda-fp16-graph: captured once, replayed on new inputs copied into its buffer."""
    from resnet_deploy.bench.catalogue import CATALOGUE

    engine = next(e.engine for e in CATALOGUE if e.engine.name == "pytorch-cuda-fp16-graph")
    _replays_match_eager(PyTorchBackend(_spec(tmp_path, engine, 2, architecture="resnet18")), 2e-2,
                         "pytorch fp16 graph")


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs onnxruntime-gpu and a CUDA GPU")
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_onnxruntime_nhwc_cuda_graph(tmp_path: Path, resnet18_onnx: Path, precision: str) -> None:
    """cuda-fp32-nhwc-graph and cuda-fp16-nhwc-graph: the warm-up/capture run, replays on new
    inputs, and the timed replay."""
    from resnet_deploy.graph.io import load_onnx, save_onnx
    from resnet_deploy.graph.fp16 import convert_fp16

    model = resnet18_onnx
    if precision == "fp16":
        model = tmp_path / "fp16.onnx"
        save_onnx(convert_fp16(load_onnx(resnet18_onnx))[0], model)
    engine = Engine("e", "onnxruntime", "cuda", precision, str(model), {"prefer_nhwc": True, "cuda_graph": True})
    backend = OnnxRuntimeBackend(_spec(tmp_path, engine, 2, model_path=str(model)))
    assert backend.cuda_graph
    _replays_match_eager(backend, 2e-2 if precision == "fp16" else 5e-3, f"{precision} nhwc graph")
