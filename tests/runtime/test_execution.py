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


def _spec(tmp_path: Path, model: Path, backend: str, provider: str,
          options: dict[str, Any] | None = None) -> WorkerSpec:
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


def _backends(tmp_path: Path, model: Path, options: dict[str, Any] | None = None) -> list[Any]:
    backends = [OnnxRuntimeBackend(_spec(tmp_path, model, "onnxruntime", "cpu", options))]
    try:
        backends.append(OpenVINORuntimeBackend(_spec(tmp_path, model, "openvino", "openvino", options)))
    except Exception as exc:  # noqa: BLE001 - the OpenVINO runtime is optional
        print(f"OpenVINO runtime not measured here: {exc}")
    return backends


def test_the_timed_call_is_the_deployed_call(resnet20_onnx: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """What the benchmark times is ``Execution.run`` with the batch as given, the very call
    ``Predictor.run`` makes: every timed call goes through it once, and returns its answer. A
    timed call prepared apart (an input bound on the device beforehand, a skipped copy) fails."""
    runs = _counting(monkeypatch, "run")
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32), dtype=np.float32)
    with Predictor(resnet20_onnx, provider="cpu") as predictor:
        deployed = predictor.run(x)
    assert runs == ["cpu"]
    for backend in _backends(tmp_path, resnet20_onnx):
        assert type(backend.execution) is Execution  # noqa: SLF001
        np.testing.assert_allclose(backend.infer(x), deployed, rtol=1e-4, atol=1e-5)
        before = len(runs)
        call = backend.timed(x)
        assert len(runs) == before  # nothing ran while the call was prepared
        np.testing.assert_allclose(np.asarray(call()), deployed, rtol=1e-4, atol=1e-5)
        assert runs[before:] == [backend.execution.provider]


def _ort_settings(session: Any) -> dict[str, Any]:
    o = session.get_session_options()
    return {"providers": session.get_providers(), "intra": o.intra_op_num_threads, "inter": o.inter_op_num_threads,
            "level": o.graph_optimization_level, "mode": o.execution_mode}


@pytest.mark.parametrize("options", [{}, {"instances": True}])
def test_the_measured_session_is_built_as_the_deployed_one(resnet20_onnx: Path, tmp_path: Path,
                                                           options: dict[str, Any],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The benchmark's sessions (the first, and with ``instances`` each request thread's own) have
    the settings of the session a Predictor opens from the same SessionConfig: onnxruntime's
    session options, OpenVINO's compiled NUM_STREAMS and INFERENCE_NUM_THREADS."""
    from resnet_deploy.runtime import SessionConfig

    used: list[Any] = []  # the session each timed call ran on
    real = Execution.run

    def run(self: Execution, batch: np.ndarray, *, session: Any = None) -> np.ndarray:
        used.append(session if session is not None else self.session)
        return real(self, batch, session=session)

    monkeypatch.setattr(Execution, "run", run)
    x = np.zeros((2, 3, 32, 32), np.float32)
    for backend in _backends(tmp_path, resnet20_onnx, options):
        provider = backend.execution.provider
        with Predictor(resnet20_onnx, config=SessionConfig(provider=provider, threads=1)) as predictor:
            used.clear()
            for call in [backend.timed(x) for _ in range(2)]:
                call()
            assert len({id(s) for s in used}) == (2 if options else 1)  # with instances, a session per thread
            for session in used:
                if provider == "openvino":
                    assert ((session.streams, session.threads)
                            == (predictor._session.streams, predictor._session.threads))  # noqa: SLF001
                else:
                    assert _ort_settings(session) == _ort_settings(predictor._session)  # noqa: SLF001


@pytest.mark.parametrize("cuda_graph", [False, True])
def test_the_gpu_paths_on_cpu_buffers(resnet20_onnx: Path, tmp_path: Path, cuda_graph: bool) -> None:
    """IO binding and CUDA-graph capture/replay, with the device buffers on the CPU: the same
    Execution code for a Predictor and for the benchmark's timed call, equal to a plain run."""
    x = np.random.default_rng(1).standard_normal((5, 3, 32, 32), dtype=np.float32)
    with Predictor(resnet20_onnx, provider="cpu") as predictor:
        reference = predictor.run(x)
        e = predictor._execution  # noqa: SLF001
        gpu = Execution(e.session, "cuda", input_name=e.input_name, output_name=e.output_name,
                        input_dtype=e.input_dtype, cuda_graph=cuda_graph, device="cpu")
        # chunks of 2 with a graph
        assert compare(gpu.run(x[:2]), reference[:2]).ok and compare(gpu.run(x), reference).ok
        assert compare(gpu.timed(x[:2])(), reference[:2]).ok
        assert gpu.graph_shape == ((2, 3, 32, 32) if cuda_graph else None)
        gpu.close()
        with pytest.raises(Exception, match="closed"):
            gpu.run(x)


def test_fixed_batch_chunks_pad_with_the_last_row() -> None:
    x = np.arange(5, dtype=np.float32)[:, None]
    pieces = chunks(x, 2)
    assert [n for _, n in pieces] == [2, 2, 1]
    assert pieces[-1][0][:, 0].tolist() == [4.0, 4.0]


def _settings(session: Any) -> dict[str, Any]:
    if hasattr(session, "get_session_options"):
        return _ort_settings(session)
    # OpenVINO's, as compiled
    return {"streams": session.streams, "threads": session.threads, "precision": session.precision,
            "input": session.get_inputs()[0].shape}


def test_a_profile_deploys_each_tune_engine_as_it_was_measured(resnet20_onnx: Path, tmp_path: Path) -> None:
    """For every tune engine that runs here: the session the benchmark measured it with and the
    one Predictor.from_profile opens from the profile tune would record have the same settings
    (onnxruntime's session options; OpenVINO's NUM_STREAMS, INFERENCE_NUM_THREADS, precision and
    compiled input shape). A catalogue option the profile lost, or one a backend read its own way,
    fails here."""
    import dataclasses

    from resnet_deploy._machine import machine
    from resnet_deploy.bench.catalogue import CATALOGUE, machine_capabilities, session_fields
    from resnet_deploy.profile.deployment import DeploymentProfile, model_sha256, save_profile

    caps, checked = machine_capabilities(), []
    for entry in CATALOGUE:
        engine = entry.engine
        if not entry.tune or engine.provider not in ("cpu", "openvino") or not entry.needs <= caps:
            continue
        spec = WorkerSpec(dataclasses.replace(engine, artifact=str(resnet20_onnx)), 4, 1, 1, str(tmp_path / "x.npy"),
                          str(tmp_path / "y.npy"), 0, model_path=str(resnet20_onnx))
        backend = (OpenVINORuntimeBackend if engine.backend == "openvino-runtime" else OnnxRuntimeBackend)(spec)
        path = tmp_path / f"{engine.name}.json"
        save_profile(DeploymentProfile(model=str(resnet20_onnx), model_sha256=model_sha256(resnet20_onnx),
                                       provider=engine.provider, backend=engine.backend, precision=engine.precision,
                                       batch_size=4, session={**session_fields(engine, 4), "threads": 1}, measured={},
                                       machine=machine()), path)
        with Predictor.from_profile(path) as predictor:
            assert _settings(backend.execution.session) == _settings(predictor._session), engine.name  # noqa: SLF001
            assert backend.execution.fixed_batch == predictor._execution.fixed_batch, engine.name  # noqa: SLF001
        checked.append(engine.name)
    print("deployed as measured:", ", ".join(checked))
    assert "ort-fp32" in checked and ("ov-int8-static" in checked or "ov-runtime" not in caps)
