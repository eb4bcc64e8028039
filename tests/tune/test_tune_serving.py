"""tune --mode throughput: instances x threads per instance, measured, recorded, and served."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc
from typer.testing import CliRunner

from resnet_deploy.bench.backends import OnnxRuntimeBackend
from resnet_deploy.bench.schema import Engine, WorkerSpec
from resnet_deploy.runtime import cpu_count
from resnet_deploy.tune.serving import layouts
from resnet_deploy_cli.main import app

runner = CliRunner()


def test_layouts_fill_the_cores() -> None:
    assert layouts(1) == [(1, 1)]
    assert layouts(2) == [(1, 2), (2, 1)]
    assert layouts(6) == [(1, 6), (2, 3), (3, 2), (6, 1)]
    # Never more instances than triton and serve take: a profile tune writes is one they serve.
    assert layouts(256) == [(1, 256), (2, 128), (4, 64), (8, 32), (16, 16), (32, 8), (64, 4)]


def test_instances_option_gives_each_request_thread_its_own_session(resnet20_onnx: Path, tmp_path: Path) -> None:
    """As Triton runs one session per model instance: the benchmark's `instances` engine option."""
    import numpy as np

    spec = WorkerSpec(Engine("e", "onnxruntime", "cpu", "fp32", str(resnet20_onnx), {"instances": True}), 1, 1, 2,
                      str(tmp_path / "x.npy"), str(tmp_path / "y.npy"), 0, model_path=str(resnet20_onnx))
    backend = OnnxRuntimeBackend(spec)
    x = np.zeros((1, 3, 32, 32), np.float32)
    calls = [backend.timed(x) for _ in range(3)]
    sessions = {id(inspect.getclosurevars(c).nonlocals["session"]) for c in calls}  # None: the first, own session
    assert len(sessions) == 3
    for call in calls:
        call()


@pytest.mark.parametrize("args, needle", [
    (["--max-p99-ms", "5"], "--max-p99-ms applies to --mode throughput"),
    (["--mode", "throughput", "--max-p99-ms", "-1"], "--max-p99-ms must be a positive number"),
    (["--mode", "fastest"], "unknown mode 'fastest'"),
])
def test_bad_options_are_one_line_before_any_work(resnet20_onnx: Path, tmp_path: Path, args: list[str],
                                                  needle: str) -> None:
    r = runner.invoke(app, ["tune", str(resnet20_onnx), "-o", str(tmp_path / "p.json"), *args])
    assert r.exit_code == 1 and needle in r.output and r.output.count("\n") == 1, r.output
    assert not (tmp_path / "p.json").exists()


def test_throughput_tune_records_a_layout_that_triton_serves(resnet20_onnx: Path, tmp_path: Path) -> None:
    profile = tmp_path / "r20.json"
    r = runner.invoke(app, ["tune", str(resnet20_onnx), "-o", str(profile), "--precision", "fp32", "--providers", "cpu",
                            "--duration", "0.4", "--rounds", "1", "--mode", "throughput"])
    print(r.output)
    assert r.exit_code == 0, r.output
    data = json.loads(profile.read_text())
    serving, cores = data["serving"], cpu_count()
    assert serving["mode"] == "throughput" and serving["instances"] * serving["threads"] == cores
    assert data["session"]["threads"] == serving["threads"] and serving["images_per_s"] > 0
    assert f"instance_group count {serving['instances']}" in r.output
    r = runner.invoke(app, ["triton", "--profile", str(profile), "-r", str(tmp_path / "repo")])
    assert r.exit_code == 0, r.output
    cfg = text_format.Parse(next((tmp_path / "repo").glob("*/config.pbtxt")).read_text(), mc.ModelConfig())
    assert cfg.instance_group[0].count == serving["instances"]
    assert cfg.parameters["intra_op_thread_count"].string_value == str(serving["threads"])
    # A bound no layout can meet is refused in one line, and no profile is written.
    r = runner.invoke(app, ["tune", str(resnet20_onnx), "-o", str(tmp_path / "none.json"), "--precision", "fp32",
                            "--providers", "cpu", "--duration", "0.2", "--rounds", "1", "--mode", "throughput",
                            "--max-p99-ms", "0.0001"])
    assert r.exit_code == 1 and "no layout met --max-p99-ms 0.0001" in r.output, r.output
    assert not (tmp_path / "none.json").exists()


def test_a_profile_serving_table_is_data(resnet20_onnx: Path, tmp_path: Path) -> None:
    from resnet_deploy.profile.deployment import ProfileError, load_profile

    profile = tmp_path / "r20.json"
    r = runner.invoke(app, ["tune", str(resnet20_onnx), "-o", str(profile), "--precision", "fp32", "--providers", "cpu",
                            "--duration", "0.2", "--rounds", "1"])
    assert r.exit_code == 0, r.output
    data = json.loads(profile.read_text())
    assert data["serving"] == {}  # latency mode records no layout
    for serving, needle in (({"instances": 0}, "serving.instances"),
                            ({"instances": 2, "command": "rm -rf /"}, "serving.command"),
                            ({"threads": "2"}, "serving.threads")):
        profile.write_text(json.dumps({**data, "serving": serving}))
        with pytest.raises(ProfileError, match=needle):
            load_profile(profile)


def test_serving_mistakes_are_one_line(resnet20_onnx: Path, tmp_path: Path) -> None:
    """--provider beside a profile (which names its own), bench --url without the file it serves,
    and a hand-edited layout whose threads differ from the session's: each refused by name."""
    from resnet_deploy.profile.deployment import ProfileError, load_profile

    profile = tmp_path / "r20.json"
    r = runner.invoke(app, ["tune", str(resnet20_onnx), "-o", str(profile), "--precision", "fp32", "--providers", "cpu",
                            "--duration", "0.2", "--rounds", "1", "--mode", "throughput"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["triton", "--profile", str(profile), "-r", str(tmp_path / "repo"), "--provider", "cuda"])
    assert r.exit_code == 1 and "--profile names its provider" in r.output and r.output.count("\n") == 1
    r = runner.invoke(app, ["bench", "--url", "grpc://127.0.0.1:8001", "--model", "resnet20"])
    assert r.exit_code == 1 and "give that file (or its --profile) too" in r.output and r.output.count("\n") == 1
    data = json.loads(profile.read_text())
    data["serving"]["threads"] = data["session"]["threads"] + 1
    profile.write_text(json.dumps(data))
    with pytest.raises(ProfileError, match="'serving.threads' .* differs from 'session.threads'"):
        load_profile(profile)
