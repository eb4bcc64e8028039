"""End to end against Triton's own server: the repositories ``resnet-deploy triton`` writes,
loaded by the real ``tritonserver`` core (the ``nvidia-pytriton`` wheel) under a strict config
and queried over HTTP and gRPC.

The wheel pins numpy<2, so these tests run in an environment of their own that ``.ci/run``
builds (``pip install -e '.[serve]' openvino pytest``), on a ResNet-20 exported by the main
environment (``RESNET_DEPLOY_TRITON_MODEL``). Elsewhere they are skipped, unless
``RESNET_DEPLOY_REQUIRE_TRITON=1`` turns a skip into a failure. The wheel has no onnxruntime
backend: ``tests/triton_server/onnxruntime`` stands in for it (a test fixture, see its docstring).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest
from typer.testing import CliRunner

from ..._require import skip_unless_present


MODEL = os.environ.get("RESNET_DEPLOY_TRITON_MODEL")
# The same ResNet-20 exported with --image-input (uint8 RGB [N, H, W, 3] of any size, top-3 outputs).
IMAGE_MODEL = os.environ.get("RESNET_DEPLOY_TRITON_IMAGE_MODEL")
# The same ResNet-20 exported with --features --normalize (embedding [N, 64] out).
FEATURES_MODEL = os.environ.get("RESNET_DEPLOY_TRITON_FEATURES_MODEL")
STAND_IN = Path(__file__).parents[2] / "triton_server" / "onnxruntime"


def _skip(reason: str) -> None:
    skip_unless_present(reason, "RESNET_DEPLOY_REQUIRE_TRITON", module_level=True)


try:
    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient

    from resnet_deploy.serving.triton.server import TritonServer, TritonServerError, find_tritonserver

    find_tritonserver()
except Exception as exc:  # ImportError, or the wheel without its binary
    _skip(f"Triton's server is not installed here ({exc.__class__.__name__}: {str(exc)[:80]})")
if not MODEL or not Path(MODEL).is_file():
    _skip("RESNET_DEPLOY_TRITON_MODEL names no exported ResNet-20")
if not IMAGE_MODEL or not Path(IMAGE_MODEL).is_file():
    _skip("RESNET_DEPLOY_TRITON_IMAGE_MODEL names no ResNet-20 exported with --image-input")
if not FEATURES_MODEL or not Path(FEATURES_MODEL).is_file():
    _skip("RESNET_DEPLOY_TRITON_FEATURES_MODEL names no ResNet-20 exported with --features")

from resnet_deploy._owned import pid_namespace  # noqa: E402
from resnet_deploy.runtime import Predictor  # noqa: E402
from resnet_deploy_cli.main import app  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
BATCHES = (1, 3, 8)


def _cli(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("model") / "resnet20.onnx"
    shutil.copyfile(MODEL, path)  # type: ignore[arg-type]
    return path


def _inputs(batch: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed + batch).standard_normal((batch, 3, 32, 32), dtype=np.float32)


def _infer(module: Any, url: str, name: str, x: np.ndarray, input_name: str = "input", datatype: str = "FP32") -> Any:
    """One request with a fresh client of ``module`` (tritonclient.http or .grpc), closed after:
    keep-alive connections would hold the server's shutdown."""
    client = module.InferenceServerClient(url)
    try:
        inp = module.InferInput(input_name, list(x.shape), datatype)
        inp.set_data_from_numpy(x)
        return client.infer(name, [inp])
    finally:
        client.close()


def _http(url: str, name: str, x: np.ndarray) -> np.ndarray:
    return _infer(httpclient, url, name, x).as_numpy("logits")


def _grpc(url: str, name: str, x: np.ndarray) -> np.ndarray:
    return _infer(grpcclient, url, name, x).as_numpy("logits")


def _stopped_cleanly(server: TritonServer, pid: int) -> None:
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)  # the server and every stub it started are gone


@pytest.fixture(scope="module")
def served(model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TritonServer, Path]]:
    """One server for the module: the plain entry, a batching entry and a profile entry."""
    repo = tmp_path_factory.mktemp("repo")
    _cli("triton", str(model), "-r", str(repo))
    _cli("triton", str(model), "-r", str(repo), "--name", "batching", "--queue-delay-us", "20000")
    profile = model.parent / "resnet20.profile.json"
    _cli("tune", str(model), "-o", str(profile), "--precision", "fp32,bf16", "--duration", "0.3", "--rounds", "1")
    _cli("triton", "--profile", str(profile), "-r", str(repo), "--name", "tuned", "--backend", "python")
    throughput = model.parent / "resnet20.throughput.json"  # instances x threads for a service
    _cli("tune", str(model), "-o", str(throughput), "--precision", "fp32,bf16", "--duration", "0.3", "--rounds", "1",
         "--mode", "throughput")
    _cli("triton", "--profile", str(throughput), "-r", str(repo), "--name", "tuned_throughput")
    _cli("triton", str(IMAGE_MODEL), "-r", str(repo), "--name", "image")
    _cli("triton", str(IMAGE_MODEL), "-r", str(repo), "--name", "image_py", "--backend", "python")
    _cli("triton", str(IMAGE_MODEL), "-r", str(repo), "--name", "image_batching", "--backend", "python",
         "--queue-delay-us", "2000000")  # concurrent requests wait (2 s, for a loaded machine) to be merged
    _cli("triton", str(FEATURES_MODEL), "-r", str(repo), "--name", "features")
    _cli("triton", str(FEATURES_MODEL), "-r", str(repo), "--name", "features_py", "--backend", "python")
    server = TritonServer(repo, backends={"onnxruntime": STAND_IN})
    server.start()
    pid = server.pid
    assert pid is not None
    yield server, profile
    assert server.stop() == 0, server.log()[-2000:]
    _stopped_cleanly(server, pid)


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_logits_bit_identical_to_predictor(served: tuple[TritonServer, Path], model: Path, protocol: str) -> None:
    server, _ = served
    with Predictor(model, provider="cpu") as predictor:
        for batch in BATCHES:
            x = _inputs(batch)
            got = _http(server.http, "resnet20", x) if protocol == "http" else _grpc(server.grpc, "resnet20", x)
            want = predictor.run(x)
            print(f"{protocol} batch {batch}: max abs diff {np.abs(got - want).max():.1e}")
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("entry", ["tuned", "tuned_throughput"])
def test_profile_served_as_tuned(served: tuple[TritonServer, Path], entry: str) -> None:
    """tune's winner (here the OpenVINO runtime in bf16, say), served by the Python backend (or,
    where it can express it, the onnxruntime backend): the same logits as Predictor.from_profile
    on the same inputs; in throughput mode with the instance count tune measured."""
    import json

    server, profile = served
    if entry == "tuned_throughput":
        profile = profile.with_name("resnet20.throughput.json")
        layout = json.loads(profile.read_text())["serving"]
        client = httpclient.InferenceServerClient(server.http)
        try:
            config = client.get_model_config(entry)
        finally:
            client.close()
        assert config["instance_group"][0]["count"] == layout["instances"]
    with Predictor.from_profile(profile) as predictor:
        print(f"profile: {predictor.profile.backend} {predictor.profile.precision}")
        for batch in BATCHES:
            x = _inputs(batch, seed=7)
            want = predictor.run(x)
            for got in (_http(server.http, entry, x), _grpc(server.grpc, entry, x)):
                np.testing.assert_array_equal(got, want)


def test_dynamic_batching_merges_concurrent_requests(served: tuple[TritonServer, Path]) -> None:
    server, _ = served
    clients, requests = 8, 10
    errors: list[BaseException] = []

    start = threading.Barrier(clients)

    def client(seed: int) -> None:
        connection = grpcclient.InferenceServerClient(server.grpc)  # one connection per client, as real clients keep
        try:
            start.wait(30)
            for i in range(requests):
                x = _inputs(1, seed=100 * seed + i)
                inp = grpcclient.InferInput("input", list(x.shape), "FP32")
                inp.set_data_from_numpy(x)
                connection.infer("batching", [inp])
        except BaseException as exc:  # noqa: BLE001 - reported by the assert below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=client, args=(s,)) for s in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    stats = httpclient.InferenceServerClient(server.http)
    try:
        model_stats = stats.get_inference_statistics("batching")["model_stats"][0]
    finally:
        stats.close()
    inferences, executions = int(model_stats["inference_count"]), int(model_stats["execution_count"])
    print(f"{inferences} inferences in {executions} executions")
    assert inferences == clients * requests, (inferences, executions)
    assert executions < inferences, (inferences, executions)  # requests were merged into batches


@pytest.mark.parametrize("broken, reason", [
    ("max_batch_size: 32", "max_batch_size: 4\ndynamic_batching { preferred_batch_size: [ 8 ] }"),
    ("dims: [ 3, 32, 32 ]", "dims: [ 32, 32, 3 ]"),
    ("platform:", "platform; "),
])
def test_broken_config_refused_with_tritons_reason(model: Path, tmp_path: Path, broken: str, reason: str) -> None:
    repo = tmp_path / "repo"
    _cli("triton", str(model), "-r", str(repo))
    config = repo / "resnet20" / "config.pbtxt"
    text = config.read_text()
    if broken == "max_batch_size: 32":
        text = text.replace("max_batch_size: 32", "max_batch_size: 4").replace(
            "preferred_batch_size: [ 4, 8, 16, 32 ]", "preferred_batch_size: [ 8 ]")
    else:
        text = text.replace(broken, reason, 1)
    config.write_text(text)
    server = TritonServer(repo, backends={"onnxruntime": STAND_IN}, ready_timeout_s=30)
    with pytest.raises(TritonServerError) as info:
        server.start()
    message = str(info.value)
    print(message)
    assert "\n" not in message
    expected = {"max_batch_size: 32": "preferred size must be <= max batch size",
                "dims: [ 3, 32, 32 ]": "dims [32, 32, 3] do not match",
                "platform:": "Error parsing text-format"}[broken]
    assert expected in message
    assert server.pid is None


def test_port_in_use_is_one_line_and_leaves_nothing(model: Path, tmp_path: Path) -> None:
    import socket

    repo = tmp_path / "repo"
    _cli("triton", str(model), "-r", str(repo))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        server = TritonServer(repo, backends={"onnxruntime": STAND_IN}, http_port=busy.getsockname()[1],
                              ready_timeout_s=30)
        with pytest.raises(TritonServerError) as info:
            server.start()
    print(info.value)
    assert "\n" not in str(info.value) and "in use" in str(info.value)
    assert server.pid is None


# -- the load test: bench --url, served and in-process side by side ---------------------------------

def test_bench_url_measures_served_beside_in_process(served: tuple[TritonServer, Path], model: Path,
                                                     tmp_path: Path) -> None:
    import json

    server, _ = served
    out = tmp_path / "served.json"
    _cli("bench", str(model), "--url", f"grpc://{server.grpc},http://{server.http}", "--model", "resnet20",
         "--mode", "throughput", "--concurrency", "1,4", "--duration", "0.6", "--rounds", "2", "--json", str(out))
    records = {(r["engine"], r["concurrency"]): r for r in json.loads(out.read_text())["results"]}
    assert set(records) == {(e, c) for e in ("resnet20", "triton-grpc", "triton-http") for c in (1, 4)}
    for (engine, concurrency), r in records.items():
        print(f"{engine} c{concurrency}: p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, "
              f"{r['images_per_s']:.0f} img/s, server queue {r['server_queue_ms']} compute {r['server_compute_ms']} "
              f"batch {r['server_batch']}")
        assert r["error"] is None and r["p50_ms"] > 0 and r["p99_ms"] >= r["p50_ms"] and r["images_per_s"] > 0
        assert r["max_rel_error"] == 0.0  # the served answer is the in-process answer, bit for bit
        if engine.startswith("triton"):
            assert r["server_compute_ms"] > 0 and r["server_queue_ms"] >= 0 and r["server_batch"] >= 1
        else:
            assert r["server_compute_ms"] is None


# (bench's in-process side beside the profile entry "tuned", whether a warning says it is not what is served)
BASELINES = [("file", True), ("profile", False)]


@pytest.mark.parametrize("side, warned", BASELINES, ids=["plain-file", "its-profile"])
def test_bench_url_says_when_its_baseline_is_not_what_is_served(served: tuple[TritonServer, Path], model: Path,
                                                                side: str, warned: bool) -> None:
    import warnings

    server, profile = served
    target = ["--profile", str(profile)] if side == "profile" else [str(model)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = CliRunner().invoke(app, ["bench", *target, "--url", f"grpc://{server.grpc}", "--model", "tuned",
                                          "--iterations", "3", "--rounds", "1", "--warmup", "0"])
    notes = [str(w.message) for w in caught if "serves a profile's configuration" in str(w.message)]
    print(result.output, notes)
    assert result.exit_code == 0, result.output
    assert bool(notes) is warned, notes


@pytest.mark.parametrize("url, model_name, needle", [
    ("grpc://127.0.0.1:{free}", "resnet20", "cannot reach Triton at grpc://127.0.0.1:"),
    ("http://127.0.0.1:{free}", "resnet20", "cannot reach Triton at http://127.0.0.1:"),
    ("{grpc}", "nope", "has no ready model named 'nope'"),
    ("ftp://x:1", "resnet20", "is not HOST:PORT"),
])
def test_bench_url_refuses_in_one_line(served: tuple[TritonServer, Path], model: Path, url: str, model_name: str,
                                       needle: str) -> None:
    from resnet_deploy.serving.triton.server import free_port

    server, _ = served
    url = url.format(free=free_port(), grpc=f"grpc://{server.grpc}")
    result = CliRunner().invoke(app, ["bench", str(model), "--url", url, "--model", model_name, "--duration", "0.2"])
    print(result.output)
    assert result.exit_code == 1 and needle in result.output and result.output.count("\n") <= 2


# -- resnet-deploy serve: the real server from the command line, stopped by a signal ----------------

def _serve(*args: str) -> subprocess.Popen[str]:
    exe = Path(sys.executable).parent / "resnet-deploy"
    return subprocess.Popen([str(exe), "serve", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


@pytest.mark.parametrize("stop", ["SIGINT", "SIGTERM"])
def test_serve_answers_then_stops_cleanly(model: Path, stop: str) -> None:
    import signal

    from resnet_deploy.serving.triton.server import free_port

    http, grpc, metrics = free_port(), free_port(), free_port()
    proc = _serve(str(model), "--http-port", str(http), "--grpc-port", str(grpc), "--metrics-port", str(metrics))
    try:
        lines = []
        for line in proc.stdout:  # type: ignore[union-attr]
            lines.append(line)
            if line.startswith("ready"):
                break
        print("".join(lines))
        assert any(f"127.0.0.1:{grpc}" in ln for ln in lines), lines
        x = _inputs(4, seed=3)
        with Predictor(model, provider="cpu") as predictor:
            np.testing.assert_array_equal(_http(f"127.0.0.1:{http}", "resnet20", x), predictor.run(x))
        proc.send_signal(getattr(signal, stop))
        assert proc.wait(30) == 0, proc.stderr.read()  # type: ignore[union-attr]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
    with pytest.raises(ProcessLookupError):
        os.killpg(proc.pid, 0)  # the server and its stubs went with it


def test_serve_on_a_busy_port_is_one_line(model: Path) -> None:
    import socket

    from resnet_deploy.serving.triton.server import free_port

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        proc = _serve(str(model), "--http-port", str(busy.getsockname()[1]), "--grpc-port", str(free_port()),
                      "--metrics-port", str(free_port()))
        out, err = proc.communicate(timeout=60)
    print(err)
    assert proc.returncode == 1 and err.startswith("error: ") and "in use" in err and err.count("\n") == 1
    assert "ready" not in out  # refused before the banner: another server's readiness never answers for ours
    with pytest.raises(ProcessLookupError):
        os.killpg(proc.pid, 0)


@pytest.mark.parametrize("entry", ["features", "features_py"])
def test_a_features_entry_answers_the_embedding_as_predictor(served: tuple[TritonServer, Path], entry: str) -> None:
    """A features file on either backend: the output ``embedding`` [N, 64] over both protocols,
    the vectors Predictor computes, bit for bit."""
    server, _ = served
    with Predictor(FEATURES_MODEL, provider="cpu") as predictor:  # type: ignore[arg-type]
        for batch in BATCHES:
            x = _inputs(batch)
            want = predictor.run(x)
            for module, url in ((httpclient, server.http), (grpcclient, server.grpc)):
                got = _infer(module, url, entry, x).as_numpy("embedding")
                assert got.shape == (batch, 64)
                np.testing.assert_array_equal(got, want)


# -- a file with the preprocessing inside: photos go in as uint8 pixels of any size ------------------

def _photo(width: int, height: int) -> np.ndarray:
    from PIL import Image

    from resnet_deploy.preprocess.labels import sample_image_path

    with Image.open(sample_image_path()) as im:
        return np.asarray(im.convert("RGB").resize((width, height)), dtype=np.uint8)[None]


@pytest.mark.parametrize("entry", ["image", "image_py"])
def test_image_input_entry_answers_as_predictor(served: tuple[TritonServer, Path], entry: str) -> None:
    """uint8 RGB [1, H, W, 3] at three sizes, over both protocols, on the onnxruntime backend (all
    four outputs) and on the Python backend (Predictor, the logits): the same logits as Predictor."""
    server, _ = served
    with Predictor(IMAGE_MODEL, provider="cpu") as predictor:  # type: ignore[arg-type]
        for width, height in ((320, 240), (180, 400), (64, 64)):
            x = _photo(width, height)
            want = predictor.run(x)
            for protocol, module, url in (("http", httpclient, server.http), ("grpc", grpcclient, server.grpc)):
                result = _infer(module, url, entry, x, input_name="image", datatype="UINT8")
                np.testing.assert_array_equal(result.as_numpy("logits"), want)
                if entry == "image":
                    top = result.as_numpy("top_k_indices")[0]
                    assert list(top) == list(np.argsort(-want[0], kind="stable")[:3]), (protocol, width, height)


def _peak_rss_mb(pid: int) -> float:
    """The peak resident memory of process ``pid`` so far (VmHWM), shared-memory pages it touched included."""
    line = next(ln for ln in Path(f"/proc/{pid}/status").read_text().splitlines() if ln.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def test_merged_large_image_requests_run_within_the_budget_and_answer_as_predictor(
        served: tuple[TritonServer, Path]) -> None:
    """Adversarial pass F3 (issue 26): the batcher merged requests that each fit the request bound
    into one run that did not (8 of 3000x3000: one 2.6 GB run). model.py now runs a merged image
    batch in runs within BATCH_PIXELS (tests/runtime/test_raw_images.py checks the cut). Here 4
    concurrent 1500x1500 requests, merged (over the budget together, one image each run), each get
    Predictor's answer for its own image; and the stub's peak grows by less than twice what one
    such request alone made it grow (one merged run: 282 MB against 73 MB for one alone; in runs:
    102 MB, the requests' shared memory included)."""
    from resnet_deploy.serving.triton.process import group_processes
    from resnet_deploy.serving.triton.server import STUB

    server, _ = served
    stub = next(p for p in group_processes(server.pid, STUB)
                if "/image_batching/" in Path(f"/proc/{p}/cmdline").read_text())
    idle = _peak_rss_mb(stub)
    _infer(grpcclient, server.grpc, "image_batching", np.zeros((1, 1500, 1500, 3), np.uint8), input_name="image",
           datatype="UINT8")
    one = _peak_rss_mb(stub)
    clients = 4
    images = [np.random.default_rng(seed).integers(0, 256, (1, 1500, 1500, 3), dtype=np.uint8)
              for seed in range(clients)]
    answers: dict[int, np.ndarray] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(clients)

    def client(i: int) -> None:
        try:
            start.wait(30)
            answers[i] = _infer(grpcclient, server.grpc, "image_batching", images[i], input_name="image",
                                datatype="UINT8").as_numpy("logits")
        except BaseException as exc:  # noqa: BLE001 - reported by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    merged = _peak_rss_mb(stub)
    stats = httpclient.InferenceServerClient(server.http)
    try:
        model_stats = stats.get_inference_statistics("image_batching")["model_stats"][0]
    finally:
        stats.close()
    inferences, executions = int(model_stats["inference_count"]), int(model_stats["execution_count"])
    print(f"{inferences} inferences in {executions} executions; stub peak: idle {idle:.0f} MB, after one request "
          f"{one:.0f} MB, after {clients} merged {merged:.0f} MB")
    assert inferences == clients + 1 and executions < inferences  # requests were merged
    with Predictor(IMAGE_MODEL, provider="cpu") as predictor:  # type: ignore[arg-type]
        for i, image in enumerate(images):
            np.testing.assert_array_equal(answers[i], predictor.run(image))
    assert merged - one < 2 * (one - idle), (idle, one, merged)


def test_a_server_that_never_becomes_ready_is_one_line_and_stopped(tmp_path: Path) -> None:
    """A model whose backend never finishes loading (a test fixture backend that sleeps): start()
    gives up after its timeout with one line and stops the server and its stubs."""
    backend = tmp_path / "backends" / "sleepy"
    backend.mkdir(parents=True)
    (backend / "model.py").write_text("import time\n\nclass TritonPythonModel:\n    def initialize(self, args):\n"
                                      "        time.sleep(600)\n\n    def execute(self, requests):\n"
                                      "        return []\n")
    entry = tmp_path / "repo" / "sleepy"
    (entry / "1").mkdir(parents=True)
    (entry / "config.pbtxt").write_text('name: "sleepy"\nbackend: "sleepy"\nmax_batch_size: 0\n'
                                        'input [ { name: "x" data_type: TYPE_FP32 dims: [ 1 ] } ]\n'
                                        'output [ { name: "y" data_type: TYPE_FP32 dims: [ 1 ] } ]\n'
                                        'instance_group [ { count: 1 kind: KIND_CPU } ]\n')
    server = TritonServer(tmp_path / "repo", backends={"sleepy": backend}, ready_timeout_s=5)
    started = {}

    real_wait = server._wait_ready

    def wait() -> None:
        started["pid"] = server.pid
        real_wait()

    server._wait_ready = wait  # type: ignore[method-assign]
    with pytest.raises(TritonServerError) as info:
        server.start()
    print(info.value)
    assert "not ready after 5 s" in str(info.value) and "\n" not in str(info.value)
    assert server.pid is None
    with pytest.raises(ProcessLookupError):
        os.killpg(started["pid"], 0)


@pytest.mark.parametrize("host, needle", [
    ("localhost", "is not an IPv4 address: Triton binds addresses, not names"),
    ("bad host", "is not an IPv4 address"),
    ("::1", "binds IPv4 addresses only"),
    ("192.0.2.1", "is not an address of this machine"),
    ("255.255.255.255", "is a broadcast address"),  # issue 26 C.3: these passed the check, then timed out
    ("224.0.0.1", "is a multicast address"),
])
def test_serve_refuses_a_host_it_cannot_bind(model: Path, host: str, needle: str) -> None:
    proc = _serve(str(model), "--host", host, "--http-port", "18377", "--grpc-port", "18378", "--metrics-port", "18379")
    out, err = proc.communicate(timeout=60)
    print(err)
    assert proc.returncode == 1 and needle in err and err.count("\n") == 1 and "ready" not in out


def _wait_ready_line(proc: "subprocess.Popen[str]") -> list[str]:
    lines = []
    for line in proc.stdout:  # type: ignore[union-attr]
        lines.append(line)
        if line.startswith("ready"):
            break
    return lines


@pytest.mark.parametrize("how", ["SIGKILL", "SIGHUP"])
def test_serve_never_leaves_a_server_behind(model: Path, how: str) -> None:
    """Killed outright (SIGKILL runs no cleanup) or by a closed terminal (SIGHUP): the server goes
    too, because it dies with its parent (PR_SET_PDEATHSIG) and SIGHUP stops it like SIGTERM."""
    import signal
    import time

    from resnet_deploy.serving.triton.server import free_port

    http = free_port()
    proc = _serve(str(model), "--http-port", str(http), "--grpc-port", str(free_port()),
                  "--metrics-port", str(free_port()))
    try:
        _wait_ready_line(proc)
        found = subprocess.run(["pgrep", "-f", "--", f"--http-port={http}"], capture_output=True,
                               text=True).stdout.split()
        assert found, "no tritonserver found"
        proc.send_signal(getattr(signal, how))
        code = proc.wait(30)
        assert code == (-9 if how == "SIGKILL" else 0), proc.stderr.read()  # type: ignore[union-attr]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and subprocess.run(["pgrep", "-f", "--", f"--http-port={http}"],
                                                             capture_output=True).returncode == 0:
            time.sleep(0.2)
        assert subprocess.run(["pgrep", "-f", "--", f"--http-port={http}"], capture_output=True).returncode == 1
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.parametrize("which", ["float", "image", "features"])
def test_the_client_call_serve_prints_runs_as_pasted(model: Path, which: str) -> None:
    """Issue 26 D.1: the call failed with NameError (no imports), had placeholder dims and set no
    data. Pasted into a shell whose python has tritonclient, it prints the served model's top class,
    Predictor's for the same data (of a features file, which has no classes, the embedding's
    shape and first values: it printed the argmax of an embedding)."""
    import re

    path = {"float": model, "image": Path(IMAGE_MODEL), "features": Path(FEATURES_MODEL)}[which]  # type: ignore[arg-type]
    _, _, ports = _ports()
    proc = _serve(str(path), *ports)
    try:
        lines = _wait_ready_line(proc)
        line = next(ln for ln in lines if ln.strip().startswith("client"))
        command = line.split(": ", 1)[1].strip()
        print(command)
        env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
        ran = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=120, env=env)
        print(ran.stdout, ran.stderr)
        assert ran.returncode == 0, ran.stderr
        rng = np.random.default_rng(0)
        x = (rng.integers(0, 256, [1, 32, 32, 3], dtype=np.uint8) if which == "image"
             else rng.standard_normal([1, 3, 32, 32]).astype(np.float32))
        with Predictor(path, provider="cpu") as predictor:
            y = predictor.run(x)
        if which == "features":
            assert ran.stdout == f"{y.shape} {y[0, :4]}\n" and y.shape == (1, 64)
        else:
            assert re.fullmatch(r"\[\d+\]\n", ran.stdout) and ran.stdout == f"[{int(y.argmax(1)[0])}]\n"
    finally:
        proc.terminate()
        assert proc.wait(30) == 0


# -- issue 26 A.1/A.2: a data file never becomes code; one request never leaves a model dead ----------

def _raw_infer(http: str, name: str, header: dict, body: bytes = b"") -> tuple[int, str]:
    """One request over HTTP/REST with a binary body, as any client that reaches the port can send."""
    import json
    import urllib.error
    import urllib.request

    text = json.dumps(header).encode()
    # Content-Type: urllib says form data otherwise
    request = urllib.request.Request(f"http://{http}/v2/models/{name}/infer", data=text + body, method="POST",
                                     headers={"Inference-Header-Content-Length": str(len(text)),
                                              "Content-Type": "application/octet-stream"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def _pixels(shape: list[int], size: int) -> dict:
    return {"inputs": [{"name": "image", "shape": shape, "datatype": "UINT8",
                        "parameters": {"binary_data_size": size}}],
            "outputs": [{"name": "logits", "parameters": {"binary_data": False}}]}


def _serve_image_model(*, max_request_mb: float) -> "tuple[subprocess.Popen[str], str]":
    """``serve`` of the --image-input ResNet-20 on free ports, ready; its process and HTTP address."""
    from resnet_deploy.serving.triton.server import free_port

    http = free_port()
    proc = _serve(str(IMAGE_MODEL), "--http-port", str(http), "--grpc-port", str(free_port()), "--metrics-port",
                  str(free_port()), "--max-request-mb", str(max_request_mb))
    _wait_ready_line(proc)
    return proc, f"127.0.0.1:{http}"


class _Stderr:
    """A process's stderr read as it comes (a thread), so a test can wait for a line while the
    process runs: serve says when it restarted a server, which is the moment a test may look."""

    def __init__(self, proc: "subprocess.Popen[str]") -> None:
        import threading

        self._lines: list[str] = []
        self._thread = threading.Thread(target=lambda: self._lines.extend(proc.stderr), daemon=True)  # type: ignore[arg-type]
        self._thread.start()

    def wait_for(self, needle: str, count: int, timeout: float = 120.0) -> bool:
        """Whether ``needle`` was said ``count`` times within ``timeout`` seconds (False once stderr ends)."""
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.text().count(needle) >= count:
                return True
            if not self._thread.is_alive():
                return False
            time.sleep(0.1)
        return False

    def text(self) -> str:
        return "".join(list(self._lines))

    def close(self) -> str:
        self._thread.join(30)
        return self.text()


def test_serve_refuses_an_oversized_request_and_survives_one_that_kills_the_stub(tmp_path: Path) -> None:
    """A request over --max-request-mb is a 400 before its data is read. A ~200-byte request whose
    shape wraps Triton's byte-size arithmetic crashes the Python stub before model.py sees it
    (upstream): serve notices the dead stub and restarts the server, whose model then answers as Predictor."""
    import json
    import time

    proc, url = _serve_image_model(max_request_mb=1)
    try:
        big = np.zeros((1, 800, 800, 3), np.uint8)  # 1.9 MB
        code, text = _raw_infer(url, "resnet20_image", _pixels(list(big.shape), big.nbytes), big.tobytes())
        print(code, text)
        assert code == 400 and "at most 1,048,576 bytes per request" in text
        stderr = _Stderr(proc)
        code, text = _raw_infer(url, "resnet20_image", _pixels([1, 4294967296, 4294967296, 3], 0))
        print(code, text)
        assert code >= 400
        # Triton may relaunch the stub for the next request by itself, but serve's restart of the
        # server (which gives the dead stub's memory back) comes too: the model is asked after it.
        assert stderr.wait_for("answers again", 1), stderr.text()
        x = _photo(96, 64)
        with Predictor(IMAGE_MODEL, provider="cpu") as predictor:  # type: ignore[arg-type]
            want = predictor.run(x)
        deadline, answer = time.monotonic() + 60, None
        while time.monotonic() < deadline:
            try:
                code, text = _raw_infer(url, "resnet20_image", _pixels(list(x.shape), x.nbytes), x.tobytes())
            except OSError as exc:  # the server is restarting: its port is closed a moment
                code, text = 0, str(exc)
            if code == 200:
                answer = np.array(json.loads(text)["outputs"][0]["data"], np.float32).reshape(want.shape)
                break
            time.sleep(0.3)
        assert answer is not None, text
        np.testing.assert_array_equal(answer, want)
        assert proc.poll() is None
        proc.terminate()
        assert proc.wait(30) == 0
        err = stderr.close()
        print(err)
        assert "Python stub" in err and err.count("restarted the server, resnet20_image answers again") == 1
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)


def _mapped_regions(pid: int) -> set[str]:
    """The /dev/shm files that process ``pid`` maps (its /proc maps; empty for a zombie). A file
    unlinked while mapped reads ``/dev/shm/NAME (deleted)``: its memory is still held."""
    try:
        lines = Path(f"/proc/{pid}/maps").read_text().splitlines()
    except OSError:
        return set()
    return {line.split(None, 5)[5] for line in lines if " /dev/shm/" in line}


def test_a_model_killed_again_and_again_leaks_no_shared_memory_and_serve_stops_at_the_bound() -> None:
    """Adversarial pass F2 (issue 26). Each dead stub's region (as large as the largest request it
    took) stayed in /dev/shm, mapped by tritonserver, until serve stopped: Triton never finishes
    unloading a model whose stub died. After each death serve restarts the server, so the run's
    regions are exactly its live stubs', and the server maps no other. A fourth death within the
    window stops serve with one line naming why, leaving no region behind."""
    import contextlib
    import time

    from resnet_deploy.serving.triton.process import group_processes
    from resnet_deploy.serving.triton.serve import MAX_RESTARTS
    from resnet_deploy.serving.triton.server import STUB

    proc, url = _serve_image_model(max_request_mb=64)
    big, small = np.zeros((1, 2000, 2000, 3), np.uint8), _photo(64, 64)  # 12 MB grows the stub's region
    stderr = _Stderr(proc)
    try:
        restarts = 0
        for death in range(MAX_RESTARTS + 3):  # a slow machine may need more deaths to fit 4 in the window
            assert _raw_infer(url, "resnet20_image", _pixels(list(big.shape), big.nbytes), big.tobytes())[0] == 200
            assert _raw_infer(url, "resnet20_image", _pixels([1, 4294967296, 4294967296, 3], 0))[0] >= 400
            # Triton may relaunch the stub by itself; the regions are counted after serve's restart
            if not stderr.wait_for("answers again", death + 1):
                break  # serve stopped at the bound
            deadline, code = time.monotonic() + 60, 0
            while time.monotonic() < deadline and code != 200 and proc.poll() is None:
                time.sleep(0.3)
                with contextlib.suppress(OSError):  # the server is restarting: its port is closed a moment
                    code = _raw_infer(url, "resnet20_image", _pixels(list(small.shape), small.nbytes),
                                      small.tobytes())[0]
            if proc.poll() is not None:  # serve stopped at the bound
                break
            assert code == 200, death
            restarts += 1
            server = _tritonserver_of(proc.pid)
            live = set().union(*(_mapped_regions(stub) for stub in group_processes(server, STUB)))
            ours = {f"/dev/shm/{n}" for n in os.listdir("/dev/shm")
                    if n.startswith(f"resnet_deploy_{pid_namespace()}_{proc.pid}_")}
            print(f"after death {death + 1}: {len(ours)} regions of this run, {len(live)} mapped by live stubs")
            assert live and ours == live, (death, sorted(ours - live))
            assert _mapped_regions(server) == live, (death, sorted(_mapped_regions(server) - live))
        assert proc.wait(60) == 1
        err = stderr.close()
        print(err)
        assert restarts >= MAX_RESTARTS and err.count("answers again") == restarts
        assert (err.strip().splitlines()[-1].startswith("error: ")
                and f"died {MAX_RESTARTS + 1} times within 60 s" in err)
        assert _left_by(proc.pid) == []
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)


# Requests model.py's shape check lets through and Predictor refuses: each is the client's error,
# a 400 naming the reason, and the model answers the next request (shape, what the answer says).
IMAGE_REFUSALS = [
    ([1, 1, 100000, 3], "would be resized to 3200000x32"),  # 300 kB, a resize target over the bound
    ([1, 0, 32, 3], "has no pixels"),
]


def test_serve_answers_400_to_the_images_predictor_refuses() -> None:
    proc, url = _serve_image_model(max_request_mb=256)
    try:
        for shape, needle in IMAGE_REFUSALS:
            x = np.zeros(shape, np.uint8)
            code, text = _raw_infer(url, "resnet20_image", _pixels(shape, x.nbytes), x.tobytes())
            print(shape, code, text)
            assert (code, needle in text) == (400, True), (shape, code, text)
        x = _photo(96, 64)
        code, text = _raw_infer(url, "resnet20_image", _pixels(list(x.shape), x.nbytes), x.tobytes())
        assert code == 200, text
        proc.terminate()
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)


def test_a_data_file_named_model_py_never_runs(model: Path, tmp_path: Path) -> None:
    """The issue's case against the real server: an unused initializer whose external data is
    ``model.py`` (code that writes a marker). Served, the model answers as Predictor and the
    marker never appears."""
    import onnx
    from onnx import TensorProto, helper

    marker = tmp_path / "pwned"
    evil = tmp_path / "evil"
    evil.mkdir()
    source = onnx.load(str(model))
    payload = f"open({str(marker)!r}, 'w').write('ran')\n".encode()
    tensor = helper.make_tensor("unused", TensorProto.UINT8, [len(payload)], payload, raw=True)
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", "model.py"), ("offset", "0"), ("length", str(len(payload)))):
        tensor.external_data.add(key=key, value=value)
    source.graph.initializer.append(tensor)
    (evil / "model.py").write_bytes(payload)
    onnx.save(source, str(evil / "r20.onnx"))
    from resnet_deploy.serving.triton.server import free_port

    http = free_port()
    proc = _serve(str(evil / "r20.onnx"), "--http-port", str(http), "--grpc-port", str(free_port()),
                  "--metrics-port", str(free_port()))
    try:
        _wait_ready_line(proc)
        x = _inputs(2, seed=5)
        with Predictor(model, provider="cpu") as predictor:
            np.testing.assert_array_equal(_http(f"127.0.0.1:{http}", "r20", x), predictor.run(x))
        assert not marker.exists()
    finally:
        proc.terminate()
        proc.wait(30)


# -- issue 26 A.3, B.5, C.2, C.4: a crash named as one, nothing left behind, a restart at once, and
# readiness that only our own server can answer -----------------------------------------------------

# 120 KB of JSON nested 60,000 deep in an input's "data": Triton 2.51 reads it recursively and dies
# of a stack overflow (upstream; measured here: 20,000 deep survives, 40,000 does not).
DEEP_JSON = (b'{"inputs":[{"name":"input","shape":[1,3,32,32],"datatype":"FP32","data":' + b"[" * 60_000 + b"]" * 60_000
             + b"}]}")


def _post(url: str, body: bytes) -> str:
    """What one POST got: its status, or the name of the error that came instead."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=body, method="POST"), timeout=60) as response:
            return str(response.status)
    except urllib.error.HTTPError as exc:
        return str(exc.code)
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return type(reason).__name__


def _ports() -> tuple[int, int, list[str]]:
    from resnet_deploy.serving.triton.server import free_port

    http, grpc = free_port(), free_port()
    return http, grpc, ["--http-port", str(http), "--grpc-port", str(grpc), "--metrics-port", str(free_port())]


@pytest.mark.parametrize("http_host, survives", [
    (None, False),          # HTTP beside gRPC: one request kills the server; serve says it crashed, and how
    ("127.0.0.1", True),    # --http-host 127.0.0.1: the network side has no HTTP port to send it to
])
def test_one_deep_json_request_and_what_serve_says(model: Path, http_host: str | None, survives: bool) -> None:
    """serve on 127.0.0.2, a loopback address that stands for the network side here."""
    http, grpc, ports = _ports()
    proc = _serve(str(model), "--host", "127.0.0.2", *(["--http-host", http_host] if http_host else []), *ports)
    try:
        banner = "".join(_wait_ready_line(proc))
        got = _post(f"http://127.0.0.2:{http}/v2/models/resnet20/infer", DEEP_JSON)
        print(banner, got)
        if survives:
            assert got == "ConnectionRefusedError" and f"http://127.0.0.1:{http}/" in banner
            x = _inputs(2, seed=9)
            with Predictor(model, provider="cpu") as predictor:
                np.testing.assert_array_equal(_grpc(f"127.0.0.2:{grpc}", "resnet20", x), predictor.run(x))
                np.testing.assert_array_equal(_http(f"127.0.0.1:{http}", "resnet20", x), predictor.run(x))
            proc.terminate()
            assert proc.wait(30) == 0
        else:
            code = proc.wait(30)
            err = proc.stderr.read()  # type: ignore[union-attr]
            print(err)
            assert code == 1 and err.count("\n") == 1
            assert "error: tritonserver crashed: killed by signal 11 (SIGSEGV)" in err
            assert "its log ends: " in err and f"Started HTTPService at 127.0.0.2:{http}" in err
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)


def _tritonserver_of(serve_pid: int) -> int:
    """The pid of the tritonserver a serve started: its --id names the serve's pid."""
    found = subprocess.run(["pgrep", "-f", "--", f"--id=resnet-deploy-{serve_pid}-"], capture_output=True, text=True)
    return int(found.stdout.split()[0])


def _left_by(pid: int) -> list[str]:
    """What the run of ``pid`` holds: its shared-memory regions and its marked temporary folders."""
    import tempfile

    regions = sorted(f"/dev/shm/{n}" for n in os.listdir("/dev/shm")
                     if n.startswith(f"resnet_deploy_{pid_namespace()}_{pid}_"))
    folders = sorted(str(p) for p in Path(tempfile.gettempdir()).glob("resnet-deploy-*")
                     if (p / ".resnet-deploy-owner").is_file()
                     and (p / ".resnet-deploy-owner").read_text().split()[0] == str(pid))
    return regions + folders


def test_serve_removes_its_leftovers_and_those_of_a_killed_run(model: Path) -> None:
    """Issue 26 B.5. A serve and its server killed outright (SIGKILL runs no cleanup) leave their
    regions in /dev/shm and their folders in /tmp; the next serve removes them once ready, and
    removes its own when it stops."""
    import time

    _, _, ports = _ports()
    first = _serve(str(model), "--instances", "2", *ports)
    try:
        _wait_ready_line(first)
        server = _tritonserver_of(first.pid)
        held = _left_by(first.pid)
        print("\n".join(held))
        # serve's, Triton's
        assert any(p.startswith("/dev/shm/") for p in held) and sum("/resnet-deploy-" in p for p in held) == 2
        os.killpg(first.pid, 9)
        os.killpg(server, 9)
        first.wait(30)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and subprocess.run(["pgrep", "-g", str(server)],
                                                             capture_output=True).returncode == 0:
            time.sleep(0.2)
        assert _left_by(first.pid) == held  # the killed run left all of it
    finally:
        if first.poll() is None:
            os.killpg(first.pid, 9)
    _, _, ports = _ports()
    second = _serve(str(model), *ports)
    try:
        _wait_ready_line(second)
        assert _left_by(first.pid) == []
        assert _left_by(second.pid)
        second.terminate()
        assert second.wait(30) == 0
        assert _left_by(second.pid) == []
    finally:
        if second.poll() is None:
            os.killpg(second.pid, 9)


def test_serve_restarts_at_once_on_the_same_ports(model: Path) -> None:
    """Issue 26 C.2: the readiness probe's connections, closed by the server, sit in TIME-WAIT on
    its port for a minute; a restart binds as Triton does (SO_REUSEADDR) and is not refused."""
    _, _, ports = _ports()
    for attempt in ("first", "restart"):
        proc = _serve(str(model), *ports)
        try:
            lines = _wait_ready_line(proc)
            assert lines and lines[-1].startswith("ready"), (attempt, proc.stderr.read())  # type: ignore[union-attr]
            proc.terminate()
            assert proc.wait(30) == 0
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, 9)


def test_readiness_is_answered_by_our_own_server_only(model: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 26 C.4: two servers on the same ports. The second cannot bind them, but until it
    exits the first answers its readiness probe: checked against our own server's --id, the
    second never reports ready; it fails with its own reason, and the first serves on."""
    from resnet_deploy.serving.triton import server as server_module

    repo = tmp_path / "repo"
    _cli("triton", str(model), "-r", str(repo), "--backend", "python")
    with TritonServer(repo) as first:
        monkeypatch.setattr(server_module, "check_port_free", lambda host, port: None)  # as when both start at once
        second = TritonServer(repo, http_port=first.http_port, grpc_port=first.grpc_port,
                              metrics_port=first.metrics_port, ready_timeout_s=60)
        with pytest.raises(TritonServerError) as info:
            second.start()
        print(info.value)
        assert "exited by itself" in str(info.value) and second.pid is None
        x = _inputs(1)
        with Predictor(model, provider="cpu") as predictor:
            np.testing.assert_array_equal(_http(first.http, "resnet20", x), predictor.run(x))


# What a client that reaches serve's ports may not do: change the server rather than ask it.
ADMIN_REQUESTS = [
    ("unload the model", "/v2/repository/models/resnet20/unload", {}),
    ("list the repository", "/v2/repository/index", {}),
    ("write a log file where it says", "/v2/logging", {"log_file": "{tmp}/written.log"}),
    ("write a trace file where it says", "/v2/trace/setting",
     {"trace_file": "{tmp}/written.trace", "trace_level": ["TIMESTAMPS"]}),
    ("map a shared-memory region", "/v2/systemsharedmemory/region/r/register",
     {"key": "/r", "offset": 0, "byte_size": 8}),
]


def test_serve_keeps_the_servers_controls_to_itself(model: Path, tmp_path: Path) -> None:
    """Over HTTP and gRPC, without this run's key: each request of the table is refused before it
    does anything; the model answers on."""
    import json

    http, grpc, ports = _ports()
    proc = _serve(str(model), *ports)
    try:
        _wait_ready_line(proc)
        for what, path, body in ADMIN_REQUESTS:
            data = json.dumps(body).replace("{tmp}", str(tmp_path)).encode()
            got = _post(f"http://127.0.0.1:{http}{path}", data)
            assert got == "403", (what, got)
        client = grpcclient.InferenceServerClient(f"127.0.0.1:{grpc}")
        try:
            for what, call in (("unload the model", lambda: client.unload_model("resnet20")),
                               ("write a log file where it says",
                                lambda: client.update_log_settings({"log_file": str(tmp_path / "g.log")}))):
                with pytest.raises(Exception, match="restricted"):
                    call()
            assert client.is_model_ready("resnet20")
        finally:
            client.close()
        assert sorted(p.name for p in tmp_path.iterdir()) == []
        x = _inputs(2, seed=4)
        with Predictor(model, provider="cpu") as predictor:
            np.testing.assert_array_equal(_grpc(f"127.0.0.1:{grpc}", "resnet20", x), predictor.run(x))
        proc.terminate()
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)


def test_a_large_request_leaves_no_peak_behind(tmp_path: Path) -> None:
    """Issue 26 B.1: after one large request the stub gives its memory back (onnxruntime's arena
    shrinks after a batch over SHRINK_AFTER_BYTES; model.py trims the heap): its private RSS is
    back within 20% of its idle level, where it used to keep the request's peak (574 MB against
    96 MB idle after a 54 MB request)."""
    import time

    from resnet_deploy.serving.triton.process import group_processes
    from resnet_deploy.serving.triton.server import STUB

    def rss_mb(pid: int, kind: str = "RssAnon") -> float:
        line = next(ln for ln in Path(f"/proc/{pid}/status").read_text().splitlines() if ln.startswith(f"{kind}:"))
        return int(line.split()[1]) / 1024

    proc, url = _serve_image_model(max_request_mb=100)
    try:
        http = int(url.rsplit(":", 1)[1])
        small = _photo(64, 64)
        for _ in range(3):  # the arena's steady size for ordinary requests
            assert _raw_infer(url, "resnet20_image", _pixels(list(small.shape), small.nbytes),
                              small.tobytes())[0] == 200
        server = int(subprocess.run(["pgrep", "-f", "--", f"--http-port={http}"],
                                    capture_output=True, text=True).stdout.split()[0])
        stub = next(iter(group_processes(server, STUB)))
        idle = rss_mb(stub)
        big = np.random.default_rng(0).integers(0, 255, (4, 2000, 2000, 3), dtype=np.uint8)  # 46 MB
        code, text = _raw_infer(url, "resnet20_image", _pixels(list(big.shape), big.nbytes), big.tobytes())
        assert code == 200, text
        time.sleep(0.5)
        after = rss_mb(stub)
        # The request itself arrived through the Python backend's shared-memory pool, which stays
        # mapped (sized by the largest request, reused by the next): reported, not the stub's own.
        print(f"stub private RSS: idle {idle:.0f} MB, after a {big.nbytes / 2**20:.0f} MB request {after:.0f} MB; "
              f"shared memory mapped {rss_mb(stub, 'RssShmem'):.0f} MB")
        assert after <= 1.2 * idle
    finally:
        proc.terminate()
        proc.wait(30)
