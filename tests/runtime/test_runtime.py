"""Predictor and providers: real onnxruntime sessions on real exported models and photographs."""

from __future__ import annotations

import gc
import os
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

import resnet_deploy as rd
from resnet_deploy import RuntimeBackendError
from resnet_deploy.runtime import (Predictor, SessionConfig, available_providers, create_session, node_placement,
                                   resolve_provider)
from resnet_deploy.runtime import predictor as predictor_mod
from resnet_deploy.runtime import providers as providers_mod
from resnet_deploy.runtime import session as session_mod
from resnet_deploy.graph.verify import compare

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
    from resnet_deploy.export.exporter import ExportOptions, export_model

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
        with pytest.raises(rd.InputError, match=r"input shape \[2, 3, 31, 32\] does not match the model's "
                                                r"\[N, 3, 32, 32\]"):
            p.run(np.zeros((2, 3, 31, 32), np.float32))
        with pytest.raises(rd.InputError, match="dtype float64"):
            p.run(np.zeros((2, 3, 32, 32), np.float64))
        with pytest.raises(rd.InputError, match="empty batch"):
            p.run(np.zeros((0, 3, 32, 32), np.float32))
    with pytest.raises(rd.RuntimeBackendError, match="closed"):
        p.run(np.zeros((1, 3, 32, 32), np.float32))


@pytest.mark.parametrize("provider", [
    "cpu",
    pytest.param("openvino",
                 marks=pytest.mark.skipif("openvino" not in available_providers(), reason="no OpenVINO here")),
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
    monkeypatch.setattr(providers_mod, "tensorrt_libraries", lambda: True)
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
    with pytest.raises(rd.ProviderUnavailableError, match="provider 'cuda' is not available on this machine; "
                                                          "available: cpu$"):
        resolve_provider("cuda")
    with pytest.raises(rd.ProviderUnavailableError, match="unknown provider 'tpu'"):
        resolve_provider("tpu")
    # onnxruntime-gpu lists TensorRT whether or not TensorRT is installed (the lent H200s have none)
    monkeypatch.setattr(providers_mod, "tensorrt_libraries", lambda: False)
    monkeypatch.setattr(ort, "get_available_providers",
                        lambda: ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"])
    assert resolve_provider("auto") == "cuda"
    with pytest.raises(rd.ProviderUnavailableError, match=r"listed by onnxruntime but TensorRT's libraries "
                                                          r"\(libnvinfer\) are not installed; available: cuda, cpu"):
        resolve_provider("tensorrt")


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
        with pytest.warns(UserWarning, match="CUDAExecutionProvider"), \
                pytest.raises(rd.ProviderUnavailableError, match="refusing to fall back silently"):
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
    with pytest.raises(rd.ProviderUnavailableError, match=r"provider 'cuda' is not available on this machine; "
                                                          r"available: .*cpu"):
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
        predictor_mod, "open_session",
        lambda model, cfg, placement=False: (ort.InferenceSession(model, providers=["CPUExecutionProvider"]),
                                             "openvino", counts)
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
    for path, match in [(tmp_path / "missing.onnx", "not found"), (empty, "empty"), (garbage, "not a valid ONNX"),
                        (truncated, "not a valid ONNX|invalid ONNX")]:
        with pytest.raises(rd.OnnxModelError, match=match):
            Predictor(path, provider="cpu")


# The CUDA EP's option names, as onnxruntime's cuda_execution_provider_info.cc spells them.
CUDA_EP_OPTIONS = {
    "device_id", "has_user_compute_stream", "user_compute_stream", "gpu_mem_limit", "arena_extend_strategy",
    "cudnn_conv_algo_search", "do_copy_in_default_stream", "gpu_external_alloc", "gpu_external_free",
    "gpu_external_empty_cache", "cudnn_conv_use_max_workspace", "enable_cuda_graph", "cudnn_conv1d_pad_to_nc1d",
    "tunable_op_enable", "tunable_op_tuning_enable", "tunable_op_max_tuning_duration_ms",
    "enable_skip_layer_norm_strict_mode", "prefer_nhwc", "use_ep_level_unified_stream", "use_tf32",
}


def test_cuda_provider_options() -> None:
    """What InferenceSession receives for the CUDA engines, built without a GPU: onnxruntime's
    own option names, string values it parses ("1" for booleans), CPU last."""
    plain = providers_mod.provider_list("cuda", SessionConfig())
    assert plain == [
        ("CUDAExecutionProvider", {"cudnn_conv_algo_search": "EXHAUSTIVE", "do_copy_in_default_stream": "1"}),
        "CPUExecutionProvider"]
    tuned = providers_mod.provider_list("cuda", SessionConfig(prefer_nhwc=True, cuda_graph=True))
    name, options = tuned[0]
    assert name == "CUDAExecutionProvider" and tuned[1:] == ["CPUExecutionProvider"]
    assert options == {"cudnn_conv_algo_search": "EXHAUSTIVE", "do_copy_in_default_stream": "1",
                       "enable_cuda_graph": "1", "prefer_nhwc": "1"}
    assert set(options) <= CUDA_EP_OPTIONS and all(isinstance(v, str) for v in options.values())


def _graph_on_cpu(predictor: Predictor) -> None:
    """Run a CPU Predictor through its CUDA-graph path (fixed buffers bound once, updated in
    place), with the buffers on the CPU: the chunking and padding logic without a GPU."""
    from resnet_deploy.runtime.execution import Execution

    e = predictor._execution
    predictor._execution = Execution(e.session, "cuda", input_name=e.input_name, output_name=e.output_name,
                                     input_dtype=e.input_dtype, cuda_graph=True, device="cpu")


def test_cuda_graph_path_pads_and_chunks_other_batch_sizes(resnet20_onnx: Path) -> None:
    """A graph is captured for the first call's batch size; later calls of other sizes (the last
    chunk of predict(batch_size=...), a single image) must run padded or in chunks, not fail."""
    x = np.random.default_rng(11).standard_normal((7, 3, 32, 32), dtype=np.float32)
    with Predictor(resnet20_onnx, provider="cpu") as cpu:
        reference = cpu.run(x)
    with Predictor(resnet20_onnx, provider="cpu") as p:
        _graph_on_cpu(p)
        first = p.run(x[:3])
        assert p._execution.graph_shape == (3, 3, 32, 32)
        for out, ref in [(first, reference[:3]), (p.run(x), reference), (p.run(x[:1]), reference[:1]),
                         (p.run(x[3:5]), reference[3:5])]:
            assert out.shape == ref.shape and compare(out, ref).ok
        assert p._execution.graph_shape == (3, 3, 32, 32)  # still the one captured shape
        with pytest.raises(rd.InputError, match="image shape is fixed"):
            p._execution.run(np.zeros((3, 3, 16, 16), np.float32))


def test_bench_cuda_graph_binding_on_cpu(tmp_path: Path, resnet20_onnx: Path) -> None:
    """The benchmark's onnxruntime backend with CUDA graphs (buffers bound once, the output's
    shape and type read from the session), its buffers on the CPU."""
    from resnet_deploy.bench.backends import OnnxRuntimeBackend
    from resnet_deploy.bench.schema import Engine, WorkerSpec

    x = np.random.default_rng(12).standard_normal((2, 3, 32, 32), dtype=np.float32)
    spec = WorkerSpec(Engine("e", "onnxruntime", "cpu", "fp32", str(resnet20_onnx)), 2, 1, 1,
                      str(tmp_path / "x.npy"), str(tmp_path / "y.npy"), 1, model_path=str(resnet20_onnx))
    backend = OnnxRuntimeBackend(spec)
    reference = backend.infer(x)
    backend.execution.cuda_graph, backend.execution.device = True, "cpu"
    assert compare(backend.infer(x), reference).ok
    backend.timed(x)()
    assert backend.execution.graph_shape == (2, 3, 32, 32)


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


def _profiled_ops(model: Path, config: SessionConfig, x: np.ndarray, folder: Path) -> Counter[str]:
    """The op types one run executed, from an onnxruntime profile."""
    import json
    from dataclasses import replace

    folder.mkdir()
    session, _ = create_session(model, replace(config, profile_dir=str(folder)))
    session.run(None, {session.get_inputs()[0].name: x})
    events = json.loads(Path(session.end_profiling()).read_text())
    nodes = {e["name"]: e["args"].get("op_name", "?") for e in events if e.get("cat") == "Node" and "args" in e}
    return Counter(nodes.values())


def test_profiled_ops(tmp_path: Path, resnet20_onnx: Path) -> None:
    x = np.zeros((1, 3, 32, 32), np.float32)
    ops = _profiled_ops(resnet20_onnx, SessionConfig(provider="cpu"), x, tmp_path / "p")
    assert ops["Conv"] + ops["FusedConv"] > 0 and ops["Transpose"] == 0, dict(ops)


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs onnxruntime-gpu and a CUDA GPU")
def test_cuda_fp16_nhwc_graph_matches_cpu(tmp_path: Path, resnet18_onnx: Path) -> None:
    """What tune may choose on a GPU: the fp16 file on NHWC kernels (prefer_nhwc), then also in
    a CUDA graph, replayed for other batch sizes (padded, chunked) and from another thread."""
    from resnet_deploy.graph.io import load_onnx, save_onnx
    from resnet_deploy.graph.fp16 import convert_fp16

    fp16 = tmp_path / "fp16.onnx"
    save_onnx(convert_fp16(load_onnx(resnet18_onnx))[0], fp16)
    x = np.random.default_rng(3).standard_normal((5, 3, 224, 224), dtype=np.float32)
    image = np.random.default_rng(7).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    with Predictor(resnet18_onnx, provider="cpu") as cpu:
        reference = cpu.run(x)
        expected_top = cpu.predict([image], top_k=1)[0][0].index
    # prefer_nhwc is silently ignored by a build without onnxruntime_USE_CUDA_NHWC_OPS; when it
    # works, the layout transformer puts Transpose nodes around the NHWC convolutions.
    ops = {nhwc: _profiled_ops(fp16, SessionConfig(provider="cuda", prefer_nhwc=nhwc), x[:1], tmp_path / str(nhwc))
           for nhwc in (False, True)}
    print("ops run, NCHW:", dict(ops[False]), "prefer_nhwc:", dict(ops[True]))
    assert ops[True]["Transpose"] > ops[False]["Transpose"], ("prefer_nhwc changed nothing: "
                                                              "no NHWC kernels in this build?")
    with Predictor(fp16, provider="cuda", config=SessionConfig(prefer_nhwc=True)) as nhwc:
        print("prefer_nhwc placement", dict(nhwc.placement or {}))
        assert "CPUExecutionProvider" not in (nhwc.placement or {})
        eager = nhwc.run(x)
    with Predictor(fp16, provider="cuda", config=SessionConfig(prefer_nhwc=True, cuda_graph=True)) as graph:
        for _ in range(3):
            captured = graph.run(x[:4])
        padded = graph.run(x)  # 4, then 1 padded to 4
        with ThreadPoolExecutor(1) as pool:
            other_thread = pool.submit(graph.run, x[1:5]).result()
        top = graph.predict([image], top_k=1)[0][0].index  # a 1-image batch through predict
    for name, out, ref in [("nhwc", eager, reference), ("graph", captured, reference[:4]),
                           ("graph, padded", padded, reference), ("graph, other thread", other_thread, reference[1:5])]:
        parity = compare(out, ref, rtol=2e-2)
        print(name, parity.describe())
        assert parity.ok, name
    assert top == expected_top


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs onnxruntime-gpu and a CUDA GPU")
def test_auto_provider_runs_on_a_gpu_machine(resnet20_onnx: Path) -> None:
    """`auto` on a GPU machine must give a working session. onnxruntime-gpu lists
    TensorrtExecutionProvider whether or not the TensorRT libraries are installed (the H200 image
    had none: benchmarks/results/h200-tensorrt-unavailable.md), and auto takes it first."""
    x = np.zeros((2, 3, 32, 32), np.float32)
    with Predictor(resnet20_onnx) as p:
        print("auto ->", p.provider, dict(p.placement or {}))
        assert p.provider in ("tensorrt", "cuda") and p.run(x).shape == (2, 10)


HAS_OPENVINO = "openvino" in available_providers()


@pytest.mark.skipif(not HAS_OPENVINO, reason="needs the onnxruntime-ep-openvino plugin and a CPU it supports")
@pytest.mark.parametrize("precision", [None, "BF16"])
def test_openvino_matches_cpu(resnet18_onnx: Path, precision: str | None) -> None:
    x = np.random.default_rng(3).standard_normal((2, 3, 224, 224), dtype=np.float32)
    with Predictor(resnet18_onnx, provider="cpu") as cpu:
        reference = cpu.run(x)
    with Predictor(resnet18_onnx, provider="openvino", threads=2,
                   config=SessionConfig(openvino_precision=precision)) as ov:
        out = ov.run(x)
        placement = dict(ov.placement or {})
    parity = compare(out, reference, rtol=1e-3 if precision is None else 5e-2)
    print("openvino", precision, parity.describe(), placement)
    assert parity.top1_agreement == 1.0 and parity.ok


def test_closing_while_another_thread_runs_says_closed(resnet20_onnx: Path, tmp_path: Path) -> None:
    """close() from one thread while another runs: the run in progress finishes, and the next
    call (here the next chunk of a batch larger than the model's fixed batch of 1) is refused as
    "closed"; it used to end in `'NoneType' object has no attribute 'run'`."""
    import threading

    import onnx

    fixed = onnx.load(str(resnet20_onnx))
    for value in (fixed.graph.input[0], fixed.graph.output[0]):
        value.type.tensor_type.shape.dim[0].Clear()
        value.type.tensor_type.shape.dim[0].dim_value = 1
    onnx.save(fixed, str(tmp_path / "b1.onnx"))
    x = np.zeros((64, 3, 32, 32), np.float32)  # 64 chunks of one image
    for _ in range(3):
        p = Predictor(tmp_path / "b1.onnx", provider="cpu", threads=1)
        started, errors = threading.Event(), []

        def work() -> None:
            started.set()
            try:
                while True:
                    p.run(x)
            except Exception as exc:  # noqa: BLE001 - the type is what is checked
                errors.append(exc)

        worker = threading.Thread(target=work)
        worker.start()
        started.wait()
        time.sleep(0.05)
        p.close()
        worker.join(timeout=60)
        assert len(errors) == 1 and isinstance(errors[0], RuntimeBackendError), repr(errors)
        assert "closed" in str(errors[0])
