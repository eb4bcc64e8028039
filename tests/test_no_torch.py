"""The runtime install: no torch, and still Predictor, predict, info, triton and quantize.

Runs in a virtual environment made with ``pip install -e . pytest`` only (``.ci/run`` builds it),
on a model exported elsewhere: ``RESNET_DEPLOY_RUNTIME_MODEL`` names an ImageNet-layout export
(``resnet-deploy export --depth 18``). Where torch is importable, as in the full test
environment, the module is skipped: there it would prove nothing.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("torch") is not None, reason="torch is installed: this checks the runtime-only install"
)

ROOT = Path(__file__).resolve().parents[1]
CLI = Path(sys.executable).with_name("resnet-deploy")
EXPORT_HINT = "pip install 'resnet-deploy[export]'"


@pytest.fixture(scope="module")
def model() -> Path:
    value = os.environ.get("RESNET_DEPLOY_RUNTIME_MODEL")
    if not value:
        pytest.fail("set RESNET_DEPLOY_RUNTIME_MODEL to a model exported elsewhere (resnet-deploy export --depth 18)")
    path = Path(value)
    assert path.is_file(), path
    return path


def cli(*args: str | Path, code: int = 0) -> subprocess.CompletedProcess[str]:
    """The installed entry point of this environment, in a subprocess."""
    proc = subprocess.run([str(CLI), *map(str, args)], capture_output=True, text=True, timeout=300)
    print(proc.stdout, proc.stderr)
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    return proc


def test_torch_is_absent() -> None:
    with pytest.raises(ModuleNotFoundError):
        import torch  # noqa: F401
    assert cli("--version").stdout.startswith("resnet-deploy ")


def test_readme_predictor_snippet(model: Path, sample_image: Path) -> None:
    """The README's runtime snippet, as written there, on our model and photograph."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Python API", 1)[1]
    snippet = re.search(r"```python\n(.*?)```", section, re.S)
    assert snippet and "rd.Predictor(" in snippet.group(1)
    code = snippet.group(1).replace('"resnet50.onnx"', repr(str(model))).replace('"photo.jpg"', repr(str(sample_image)))
    code += ("\nimport sys\nassert 'torch' not in sys.modules\n"
             "print(predictor.provider, top5[0][0].label, logits.shape)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    provider, _, rest = proc.stdout.strip().splitlines()[-1].partition(" ")
    assert provider == "cpu" and rest.endswith("(8, 1000)")


def test_predict(model: Path, sample_image: Path) -> None:
    payload = json.loads(cli("predict", model, sample_image, "--top-k", "3", "--json").stdout)
    top = payload[0]["top_k"]
    assert len(top) == 3 and all(p["label"] and 0 < p["score"] < 1 for p in top)
    refused = cli("predict", model, sample_image, "--provider", "tensorrt", code=1).stderr
    assert refused.strip().startswith("error: provider 'tensorrt' is not available on this machine")


def test_info_with_placement(model: Path) -> None:
    data = json.loads(cli("info", model, "--json").stdout)
    assert data["inputs"][0]["shape"][1:] == [3, 224, 224] and data["available_providers"][-1] == "cpu"
    assert "node placement with --provider cpu: CPUExecutionProvider" in cli("info", model, "--provider", "cpu").stdout


def test_triton(model: Path, tmp_path: Path) -> None:
    cli("triton", model, "-r", tmp_path / "repo", "--name", "r")
    config = (tmp_path / "repo" / "r" / "config.pbtxt").read_text()
    assert 'platform: "onnxruntime_onnx"' in config and "dims: [ 3, 224, 224 ]" in config
    assert (tmp_path / "repo" / "r" / "1" / "model.onnx").stat().st_size == model.stat().st_size


def test_quantize(model: Path, sample_image: Path, tmp_path: Path) -> None:
    (tmp_path / "calib").mkdir()
    (tmp_path / "calib" / "a.jpg").write_bytes(sample_image.read_bytes())
    out = tmp_path / "int8.onnx"
    cli("quantize", model, "-c", tmp_path / "calib", "-o", out)
    assert 0 < out.stat().st_size < model.stat().st_size / 2


def test_bench_a_file_then_tune_and_predict_with_the_profile(model: Path, sample_image: Path, tmp_path: Path) -> None:
    """The measuring half needs no torch either: a file benchmark, tune, and the profile it writes."""
    report = tmp_path / "bench.json"
    cli("bench", model, "--providers", "cpu", "--iterations", "3", "--rounds", "1", "--json", report)
    records = json.loads(report.read_text())["results"]
    assert len(records) == 1 and records[0]["torch_imported"] is False and records[0]["p50_ms"] > 0
    profile = tmp_path / "p.json"
    cli("tune", model, "-o", profile, "--providers", "cpu", "--precision", "fp32", "--duration", "0.3", "--rounds", "1")
    assert json.loads(profile.read_text())["measured"]["candidate"] == "ort-fp32"
    payload = json.loads(cli("predict", "--profile", profile, sample_image, "--json").stdout)
    assert payload[0]["top_k"][0]["label"]


@pytest.mark.parametrize("args, message", [
    (["export", "--depth", "18"], f"error: export needs PyTorch: {EXPORT_HINT}"),
    (["optimize", "{model}", "-o", "{out}"], f"error: optimize needs onnxsim: {EXPORT_HINT}"),
    # bench measures ONNX files without torch; the zoo's eager baseline needs it.
    (["bench", "--depth", "18"], re.compile(rf"error: \S+ needs PyTorch: {re.escape(EXPORT_HINT)}")),
])
def test_export_commands_say_what_to_install(model: Path, tmp_path: Path, args: list[str],
                                             message: str | re.Pattern[str]) -> None:
    args = [a.format(model=model, out=tmp_path / "out.onnx") for a in args]
    proc = subprocess.run([str(CLI), *args], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    line = proc.stderr.strip()
    assert proc.returncode == 1 and not proc.stdout, (proc.returncode, proc.stdout, line)
    assert line == message if isinstance(message, str) else message.fullmatch(line), line
    assert not list(tmp_path.iterdir())
