"""The CLI through typer's CliRunner: every command's help, the happy paths, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from resnet_deploy import __version__
from resnet_deploy.onnx_io import load_onnx, op_counts
from resnet_deploy_cli.main import app

from ..conftest import legacy_export, randomize_bn

runner = CliRunner()
COMMANDS = ["export", "optimize", "predict", "info", "quantize", "bench", "triton", "tune", "compare"]


def invoke(*args: str | Path, code: int = 0):
    """Run the CLI in-process and check its exit status (0 unless ``code`` says otherwise)."""
    result = runner.invoke(app, [str(a) for a in args])
    print(result.output)
    assert result.exit_code == code, (result.exit_code, result.output)
    return result


def assert_clean_failure(result, *needles: str) -> None:
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = [line for line in result.output.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.output
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_every_command_is_listed() -> None:
    assert [c.name for c in app.registered_commands] == COMMANDS


@pytest.mark.parametrize("command", COMMANDS)
def test_help(command: str) -> None:
    result = invoke(command, "--help")
    assert f"Usage: resnet-deploy {command} " in result.output


def test_no_args_shows_help() -> None:
    result = invoke(code=2)  # click's no_args_is_help: the help, as a usage error
    assert all(f" {command} " in result.output for command in COMMANDS)
    assert invoke("--version").output.strip() == f"resnet-deploy {__version__}"


@pytest.mark.parametrize("args, message", [
    (["export", "--depth", "20"], "export needs PyTorch: pip install 'resnet-deploy[export]'"),
    (["optimize", "m.onnx", "-o", "out.onnx"], "optimize needs onnxsim: pip install 'resnet-deploy[export]'"),
])
def test_export_extra_missing_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str) -> None:
    """Without the export extra (simulated: torch and onnxsim not found), one line says what to install."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in ("torch", "onnxsim") else real(name, *a))
    (tmp_path / "m.onnx").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    result = invoke(*args, code=1)
    assert_clean_failure(result)
    assert result.output.strip() == f"error: {message}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


def test_export_writes_verified_model_and_report(tmp_path: Path) -> None:
    out, report = tmp_path / "r20.onnx", tmp_path / "report.json"
    result = invoke("export", "--depth", "20", "--output", out, "--report", report)
    assert result.exit_code == 0
    assert "randomly initialised" in result.output and "max rel error" in result.output
    data = json.loads(report.read_text())
    assert data["model"] == "resnet20" and data["max_rel_error"] <= 1e-4
    assert op_counts(load_onnx(out))["BatchNormalization"] == 0


def test_export_plain_and_model_name(tmp_path: Path) -> None:
    assert invoke("export", "--depth", "20", "--plain", "-o", tmp_path / "p.onnx").exit_code == 0
    meta = {p.key: p.value for p in load_onnx(tmp_path / "p.onnx").metadata_props}
    assert meta["architecture"] == "plain20"


def test_optimize_foreign_file_for_cpu(tmp_path: Path) -> None:
    import resnet_deploy as rd

    src = legacy_export(randomize_bn(rd.create_model("resnet20")), 32, tmp_path / "foreign.onnx")
    out = tmp_path / "fast.onnx"
    result = invoke("optimize", src, "--output", out, "--target", "cpu")
    assert result.exit_code == 0
    counts = op_counts(load_onnx(out))
    assert counts["BatchNormalization"] == 0 and counts["com.microsoft.FusedConv"] == 9
    assert "fold_conv_bn x19" in result.output


def test_predict_and_info(resnet18_onnx: Path, sample_image: Path) -> None:
    result = invoke("predict", resnet18_onnx, sample_image, "--top-k", "3", "--json", "--provider", "cpu")
    assert result.exit_code == 0
    payload = json.loads(result.stdout)
    assert payload[0]["image"] == str(sample_image) and len(payload[0]["top_k"]) == 3
    assert set(payload[0]["top_k"][0]) == {"index", "label", "score"}
    table = invoke("predict", resnet18_onnx, sample_image, "--provider", "cpu")
    assert table.exit_code == 0 and payload[0]["top_k"][0]["label"] in table.output
    info = invoke("info", resnet18_onnx, "--json")
    data = json.loads(info.stdout)
    assert data["inputs"][0]["shape"] == ["batch", 3, 224, 224] and data["ops"]["Conv"] == 20
    assert "cpu" in data["available_providers"] and data["metadata"]["architecture"] == "resnet18"
    text = invoke("info", resnet18_onnx, "--provider", "cpu")
    assert text.exit_code == 0 and "node placement" in text.output


# -- bad input: one line, non-zero exit, no traceback, nothing written ---------------------------

def test_unknown_depth(tmp_path: Path) -> None:
    result = invoke("export", "--depth", "51", "-o", tmp_path / "x.onnx", code=1)
    assert_clean_failure(result, "no ResNet of depth 51", "valid depths: 18, 20, 32")
    assert not list(tmp_path.iterdir())


def test_malicious_checkpoint(tmp_path: Path) -> None:
    import os
    import pickle

    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    ckpt = tmp_path / "evil.pth"
    ckpt.write_bytes(pickle.dumps({"state_dict": Evil()}))
    result = invoke("export", "--depth", "20", "--weights", ckpt, "-o", tmp_path / "x.onnx", code=1)
    assert_clean_failure(result, "refused", "evil.pth")
    assert not marker.exists() and not (tmp_path / "x.onnx").exists()


def test_existing_output_untouched_on_failure(tmp_path: Path) -> None:
    out = tmp_path / "x.onnx"
    out.write_bytes(b"keep me")
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"PK\x03\x04truncated")
    result = invoke("export", "--depth", "20", "--weights", bad, "-o", out, code=1)
    assert_clean_failure(result, "bad.pth")
    assert out.read_bytes() == b"keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.pth", "x.onnx"]


def test_unwritable_output(tmp_path: Path) -> None:
    assert_clean_failure(invoke("export", "--depth", "20", "-o", tmp_path / "no" / "x.onnx", code=1), "does not exist")
    assert_clean_failure(invoke("export", "--depth", "20", "-o", tmp_path, code=1), "is a folder")


@pytest.mark.parametrize("content", [b"", b"garbage" * 100, None])
def test_corrupt_onnx(tmp_path: Path, resnet20_onnx: Path, sample_image: Path, content: bytes | None) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(content if content is not None else resnet20_onnx.read_bytes()[:30_000])
    for args in (("optimize", bad, "-o", tmp_path / "o.onnx"), ("info", bad), ("predict", bad, sample_image)):
        assert_clean_failure(invoke(*args, code=1), "bad.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.onnx"]


def test_predict_bad_images_and_provider(tmp_path: Path, resnet20_onnx: Path, sample_image: Path) -> None:
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    assert_clean_failure(invoke("predict", resnet20_onnx, text, code=1), "not a readable image", "notes.jpg")
    assert_clean_failure(invoke("predict", resnet20_onnx, tmp_path / "missing.png", code=1), "image not found")
    assert_clean_failure(invoke("predict", resnet20_onnx, sample_image, "--provider", "tensorrt", code=1), "not available", "available: ")


def test_optimize_refuses_in_place(resnet20_onnx: Path) -> None:
    assert_clean_failure(invoke("optimize", resnet20_onnx, "-o", resnet20_onnx, code=1), "is the same file as the input MODEL")
    assert_clean_failure(invoke("optimize", resnet20_onnx, code=1), "--output is required")
