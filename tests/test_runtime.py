"""Predictor and providers: real onnxruntime sessions on real exported models and photographs."""

from __future__ import annotations

import gc
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

import resnet_deploy as rd
from resnet_deploy.runtime import Predictor, SessionConfig, available_providers, create_session, node_placement, resolve_provider
from resnet_deploy.runtime import predictor as predictor_mod
from resnet_deploy.runtime import providers as providers_mod
from resnet_deploy.runtime import session as session_mod
from resnet_deploy.verify import compare

HAS_CUDA = "CUDAExecutionProvider" in ort.get_available_providers()


def test_run_matches_eager(resnet18_onnx: Path) -> None:
    x = np.random.default_rng(5).standard_normal((3, 3, 224, 224), dtype=np.float32)
    with torch.inference_mode():
        reference = rd.create_model("resnet18")(torch.from_numpy(x)).numpy()
    with Predictor(resnet18_onnx, provider="cpu") as predictor:
        parity = compare(predictor.run(x), reference)
    print(parity.describe())
    assert parity.ok


def test_predict_on_a_real_photograph(resnet18_onnx: Path, sample_image: Path) -> None:
    from PIL import Image

    with Predictor(resnet18_onnx, provider="cpu") as predictor:
        assert predictor.provider == "cpu"
        results = predictor.predict([sample_image, Image.open(sample_image), str(sample_image)], top_k=5)
        logits = predictor.run(predictor.preprocess([sample_image]))
    assert len(results) == 3 and all(len(r) == 5 for r in results)
    first = results[0]
    assert first == results[1] == results[2]
    scores = [p.score for p in first]
    assert scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1.0 + 1e-9
    probs = np.exp(logits[0] - logits[0].max())
    probs /= probs.sum()
    assert first[0].index == int(np.argmax(logits[0])) and first[0].score == pytest.approx(probs.max(), rel=1e-6)
    assert first[0].label == rd.preprocess.imagenet_labels()[first[0].index]  # 1000 classes -> ImageNet names


def test_labels_from_metadata_or_indices(tmp_path: Path, resnet20_onnx: Path, sample_image: Path) -> None:
    from resnet_deploy.export import ExportOptions, export_model

    labelled = tmp_path / "labelled.onnx"
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    export_model(ExportOptions("resnet20", labels=names), labelled)
    with Predictor(labelled, provider="cpu") as p:
        top = p.predict(sample_image, top_k=10)[0]
    assert sorted(x.label for x in top) == sorted(names)
    with Predictor(resnet20_onnx, provider="cpu") as p:
        top = p.predict(sample_image, top_k=3)[0]
    assert all(x.label == str(x.index) for x in top)


def test_shape_and_dtype_are_checked(resnet20_onnx: Path) -> None:
    with Predictor(resnet20_onnx, provider="cpu") as p:
        with pytest.raises(rd.InputError, match=r"input shape \[2, 3, 31, 32\] does not match the model's \[N, 3, 32, 32\]"):
            p.run(np.zeros((2, 3, 31, 32), np.float32))
        with pytest.raises(rd.InputError, match="dtype float64"):
            p.run(np.zeros((2, 3, 32, 32), np.float64))
        with pytest.raises(rd.InputError, match="empty batch"):
            p.run(np.zeros((0, 3, 32, 32), np.float32))
    with pytest.raises(rd.RuntimeBackendError, match="closed"):
        p.run(np.zeros((1, 3, 32, 32), np.float32))


@pytest.mark.parametrize("provider", [
    "cpu",
    pytest.param("openvino", marks=pytest.mark.skipif("openvino" not in available_providers(), reason="no OpenVINO here")),
])
def test_shared_between_threads(resnet20_onnx: Path, provider: str) -> None:
    """Each call borrows what it needs (onnxruntime's session, an OpenVINO infer request from the pool)."""
    rng = np.random.default_rng(0)
    batches = [rng.standard_normal((b, 3, 32, 32), dtype=np.float32) for b in (1, 2, 3, 5, 8) * 8]
    with Predictor(resnet20_onnx, provider=provider, threads=1) as p:
        expected = [p.run(b) for b in batches]
        with ThreadPoolExecutor(8) as pool:
            got = list(pool.map(p.run, batches))
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(a, b)


def native_threads() -> int:
    """Threads of this process as the kernel sees them: onnxruntime's intra-op pool is native
    threads, invisible to ``threading.active_count()``."""
    return len(os.listdir("/proc/self/task"))


def test_recreating_leaks_no_threads(resnet20_onnx: Path) -> None:
    x = np.zeros((1, 3, 32, 32), np.float32)
    with Predictor(resnet20_onnx, provider="cpu", threads=2) as p:  # a pool of 2: one native thread besides ours
        p.run(x)
        during = native_threads()
    gc.collect()
    before = native_threads()
    assert during == before + 1  # the count sees the pool, so a leaked pool would show
    for _ in range(10):
        with Predictor(resnet20_onnx, provider="cpu", threads=2) as p:
            p.run(x)
    gc.collect()
    assert native_threads() == before


def test_auto_picks_the_fastest_available(monkeypatch: pytest.MonkeyPatch) -> None:
    from resnet_deploy.runtime import openvino_native

    monkeypatch.setattr(providers_mod, "openvino_plugin_devices", lambda: [])
    monkeypatch.setattr(openvino_native, "native_openvino_available", lambda: False)
    listed = {
        ("CPUExecutionProvider",): "cpu",
        ("CUDAExecutionProvider", "CPUExecutionProvider"): "cuda",
        ("CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"): "tensorrt",
        ("OpenVINOExecutionProvider", "CPUExecutionProvider"): "openvino",
        ("CUDAExecutionProvider", "OpenVINOExecutionProvider", "CPUExecutionProvider"): "cuda",
    }
    for names, expected in listed.items():
        monkeypatch.setattr(ort, "get_available_providers", lambda names=names: list(names))
        assert resolve_provider("auto") == expected, names
        assert resolve_provider("CPU") == "cpu"
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    with pytest.raises(rd.ProviderUnavailableError, match="provider 'cuda' is not available on this machine; available: cpu$"):
        resolve_provider("cuda")
    with pytest.raises(rd.ProviderUnavailableError, match="unknown provider 'tpu'"):
        resolve_provider("tpu")


def test_config_is_honoured(resnet20_onnx: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """provider=None and threads=None take the config's; given ones override it. onnxruntime is
    made to list CUDA first, so ignoring the config's cpu would pick cuda and be refused."""
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(providers_mod, "openvino_plugin_devices", lambda: [])
    x = np.zeros((1, 3, 32, 32), np.float32)
    gc.collect()
    before = native_threads()
    with Predictor(resnet20_onnx, config=SessionConfig(provider="cpu", threads=1)) as p:
        p.run(x)
        assert p.provider == "cpu"
        assert p._session.get_session_options().intra_op_num_threads == 1
        assert native_threads() == before  # one intra-op thread is the caller's: no pool thread
    with Predictor(resnet20_onnx, threads=3, config=SessionConfig(provider="cpu", threads=1)) as p:
        p.run(x)
        assert p._session.get_session_options().intra_op_num_threads == 3
        assert native_threads() == before + 2
    if HAS_CUDA:
        with Predictor(resnet20_onnx, provider="cuda", config=SessionConfig(provider="cpu")) as p:
            assert p.provider == "cuda"
    else:  # onnxruntime warns and makes a CPU session, which we refuse
        with pytest.warns(UserWarning, match="CUDAExecutionProvider"), pytest.raises(rd.ProviderUnavailableError, match="refusing to fall back silently"):
            Predictor(resnet20_onnx, provider="cuda", config=SessionConfig(provider="cpu"))


def test_one_session_per_predictor_with_placement(resnet20_onnx: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A CPU stand-in for an accelerator: with the CPU provider's placement checked, the Predictor
    must read the placement from a profile of its own session, not open a second one."""
    monkeypatch.setattr(session_mod, "PLACEMENT_CHECKED", frozenset({"cpu"}))
    created: list[ort.SessionOptions] = []

    class CountingSession(ort.InferenceSession):
        def __init__(self, *args, **kwargs) -> None:
            created.append(kwargs["sess_options"])
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(ort, "InferenceSession", CountingSession)
    x = np.random.default_rng(1).standard_normal((2, 3, 32, 32), dtype=np.float32)
    with Predictor(resnet20_onnx, provider="cpu", threads=1, config=SessionConfig(optimization="disable")) as p:
        assert len(created) == 1 and created[0].enable_profiling
        assert p._session is not None and isinstance(p._session, CountingSession)
        import onnx

        assert dict(p.placement or {}) == {"CPUExecutionProvider": len(onnx.load(str(resnet20_onnx)).graph.node)}
        out = p.run(x)
    assert len(created) == 1
    with Predictor(resnet20_onnx, provider="cpu", threads=1, check_placement=False) as q:
        np.testing.assert_allclose(q.run(x), out, rtol=1e-5, atol=1e-5)
        assert q.placement is None
    assert len(created) == 2 and not created[1].enable_profiling


@pytest.mark.skipif(HAS_CUDA, reason="CUDA is available here, so it cannot be the unavailable one")
def test_unavailable_provider_is_an_error_not_a_fallback(resnet20_onnx: Path) -> None:
    with pytest.raises(rd.ProviderUnavailableError, match=r"provider 'cuda' is not available on this machine; available: .*cpu"):
        Predictor(resnet20_onnx, provider="cuda")


def test_silent_session_fallback_is_refused(resnet20_onnx: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Simulate onnxruntime listing CUDA as available but creating a CPU-only session, as it
    does when the CUDA libraries fail to load: we must refuse, not run on the CPU."""
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(session_mod, "provider_list", lambda short, config: ["CPUExecutionProvider"])
    with pytest.raises(rd.ProviderUnavailableError, match="refusing to fall back silently"):
        create_session(str(resnet20_onnx), SessionConfig(provider="cuda"))


def test_node_placement_counts_every_node(resnet20_onnx: Path) -> None:
    placement = node_placement(str(resnet20_onnx), SessionConfig(provider="cpu", optimization="disable"))
    import onnx

    assert dict(placement) == {"CPUExecutionProvider": len(onnx.load(str(resnet20_onnx)).graph.node)}


def test_cpu_fallback_warning_on_accelerator(resnet20_onnx: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Node-level fallbacks must be visible: simulate an accelerator EP that leaves nodes on the CPU."""
    counts = Counter({"OpenVINOExecutionProvider": 20, "CPUExecutionProvider": 3})
    monkeypatch.setattr(
        predictor_mod, "open_session", lambda model, cfg, placement=False: (ort.InferenceSession(model, providers=["CPUExecutionProvider"]), "openvino", counts)
    )
    with pytest.warns(RuntimeWarning, match="3 of 23 nodes of resnet20.onnx run on CPUExecutionProvider"):
        p = Predictor(resnet20_onnx, provider="openvino")
    assert p.placement["CPUExecutionProvider"] == 3


def test_bad_model_files(tmp_path: Path, resnet20_onnx: Path) -> None:
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00\xffnot an onnx file at all" * 10)
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(resnet20_onnx.read_bytes()[:50_000])
    for path, match in [(tmp_path / "missing.onnx", "not found"), (empty, "empty"), (garbage, "not a valid ONNX"), (truncated, "not a valid ONNX|invalid ONNX")]:
        with pytest.raises(rd.OnnxModelError, match=match):
            Predictor(path, provider="cpu")


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs onnxruntime-gpu and a CUDA GPU")
@pytest.mark.parametrize("cuda_graph", [False, True])
def test_cuda_matches_cpu(resnet18_onnx: Path, cuda_graph: bool) -> None:
    x = np.random.default_rng(2).standard_normal((4, 3, 224, 224), dtype=np.float32)
    with Predictor(resnet18_onnx, provider="cpu") as cpu:
        reference = cpu.run(x)
    cfg = SessionConfig(cuda_graph=cuda_graph)
    with Predictor(resnet18_onnx, provider="cuda", config=cfg) as gpu:
        assert gpu.provider == "cuda"
        # With CUDA graphs the placement run is skipped (onnxruntime refuses graphs unless every
        # compute node is on the CUDA EP, and the run would precede the capture on another shape).
        assert (gpu.placement is None) == cuda_graph
        for _ in range(3):  # CUDA graphs replay from the second run
            out = gpu.run(x)
    parity = compare(out, reference, rtol=1e-3)
    print("cuda vs cpu", parity.describe(), dict(gpu.placement or {}))
    assert parity.ok


HAS_OPENVINO = "openvino" in available_providers()


@pytest.mark.skipif(not HAS_OPENVINO, reason="needs the onnxruntime-ep-openvino plugin and a CPU it supports")
@pytest.mark.parametrize("precision", [None, "BF16"])
def test_openvino_matches_cpu(resnet18_onnx: Path, precision: str | None) -> None:
    x = np.random.default_rng(3).standard_normal((2, 3, 224, 224), dtype=np.float32)
    with Predictor(resnet18_onnx, provider="cpu") as cpu:
        reference = cpu.run(x)
    with Predictor(resnet18_onnx, provider="openvino", threads=2, config=SessionConfig(openvino_precision=precision)) as ov:
        out = ov.run(x)
        placement = dict(ov.placement or {})
    parity = compare(out, reference, rtol=1e-3 if precision is None else 5e-2)
    print("openvino", precision, parity.describe(), placement)
    assert parity.top1_agreement == 1.0 and parity.ok
