"""The CLI in-process (``tests/_cli_cases.py``): every command's help, the happy paths, and bad input.

Each command's bad-input table is in ``test_<command>_errors.py``; what needs a real process, in
``test_e2e.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from resnet_deploy import __version__
from resnet_deploy.graph.io import load_onnx, op_counts
from resnet_deploy_cli.main import app

from .._cli_cases import assert_clean_failure, invoke, run_cli
from ..conftest import legacy_export, randomize_bn

COMMANDS = ["export", "optimize", "predict", "batch", "info", "quantize", "bench", "triton", "bundle", "serve", "tune",
            "compare", "models"]


def test_every_command_is_listed() -> None:
    assert [c.name for c in app.registered_commands] == COMMANDS


def test_dash_h_is_help_everywhere() -> None:
    commands = [c.name for c in app.registered_commands]
    assert len(commands) >= 8
    for argv in ([], *([c] for c in commands)):
        result = run_cli(*argv, "-h")
        assert result.returncode == 0 and "Usage: " in result.stdout, (argv, result.stderr)
        # A flag takes no value: `--plain <bool>` read as if `--plain true` were the usage.
        # (typer's own --help keeps its label.)
        if argv:
            shown = [line for line in result.stdout.splitlines() if "<bool>" in line and "--help" not in line]
            assert not shown, (argv, shown)


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
def test_export_extra_missing_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str],
                                          message: str) -> None:
    """Without the export extra (simulated: torch and onnxsim not found), one line says what to install."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("torch", "onnxsim") else real(name, *a))
    (tmp_path / "m.onnx").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    result = invoke(*args, code=1)
    assert_clean_failure(result)
    assert result.output.strip() == f"error: {message}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


def test_export_writes_verified_model_and_report(tmp_path: Path) -> None:
    out, report = tmp_path / "r20.onnx", tmp_path / "report.json"
    result = invoke("export", "--depth", "20", "--output", out, "--report", report)
    assert result.returncode == 0
    assert "randomly initialised" in result.output and "max rel error" in result.output
    data = json.loads(report.read_text())
    assert data["model"] == "resnet20" and data["max_rel_error"] <= 1e-4
    assert op_counts(load_onnx(out))["BatchNormalization"] == 0


def test_export_plain_and_model_name(tmp_path: Path) -> None:
    assert invoke("export", "--depth", "20", "--plain", "-o", tmp_path / "p.onnx").returncode == 0
    meta = {p.key: p.value for p in load_onnx(tmp_path / "p.onnx").metadata_props}
    assert meta["architecture"] == "plain20"


def test_optimize_foreign_file_for_cpu(tmp_path: Path) -> None:
    import resnet_deploy as rd

    src = legacy_export(randomize_bn(rd.create_model("resnet20")), 32, tmp_path / "foreign.onnx")
    out = tmp_path / "fast.onnx"
    result = invoke("optimize", src, "--output", out, "--target", "cpu")
    assert result.returncode == 0
    counts = op_counts(load_onnx(out))
    assert counts["BatchNormalization"] == 0 and counts["com.microsoft.FusedConv"] == 9
    assert "fold_conv_bn x19" in result.output


def test_predict_and_info(resnet18_onnx: Path, sample_image: Path) -> None:
    result = invoke("predict", resnet18_onnx, sample_image, "--top-k", "3", "--json", "--provider", "cpu")
    assert result.returncode == 0
    payload = json.loads(result.stdout)
    assert payload[0]["image"] == str(sample_image) and len(payload[0]["top_k"]) == 3
    assert set(payload[0]["top_k"][0]) == {"index", "label", "score"}
    table = invoke("predict", resnet18_onnx, sample_image, "--provider", "cpu")
    assert table.returncode == 0 and payload[0]["top_k"][0]["label"] in table.output
    info = invoke("info", resnet18_onnx, "--json")
    data = json.loads(info.stdout)
    assert data["inputs"][0]["shape"] == ["batch", 3, 224, 224] and data["ops"]["Conv"] == 20
    assert "cpu" in data["available_providers"] and data["metadata"]["architecture"] == "resnet18"
    text = invoke("info", resnet18_onnx, "--provider", "cpu")
    assert text.returncode == 0 and "node placement" in text.output


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
    result = invoke("export", "--depth", "20", "--weights", bad, "-o", out, "--force", code=1)
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
    assert_clean_failure(invoke("predict", resnet20_onnx, sample_image, "--provider", "tensorrt", code=1),
                         "not available", "available: ")


def test_optimize_refuses_in_place(resnet20_onnx: Path) -> None:
    assert_clean_failure(invoke("optimize", resnet20_onnx, "-o", resnet20_onnx, code=1),
                         "is the same file as the input MODEL")
    result = invoke("optimize", resnet20_onnx, code=2)  # a usage error; the help marks it [required]
    assert "Missing option '--output'" in result.output


# -- one overwrite policy: an existing output is replaced only with --force -----------------------

@pytest.mark.parametrize("args", [
    ["export", "--depth", "20", "-o", "{out}"],
    ["export", "--depth", "20", "-o", "{model}.copy.onnx", "--report", "{out}"],
    ["optimize", "{model}", "-o", "{out}"],
    ["quantize", "{model}", "-c", "{model}.npy", "-o", "{out}"],
    ["bench", "{model}", "--json", "{out}"],
    ["tune", "{model}", "-o", "{out}"],
], ids=lambda a: f"{a[0]}-{a[-2]}")
def test_existing_output_needs_force(tmp_path: Path, resnet20_onnx: Path, args: list[str]) -> None:
    out = tmp_path / "existing"
    out.write_bytes(b"keep me")
    argv = [a.replace("{out}", str(out)).replace("{model}", str(resnet20_onnx)) for a in args]
    assert_clean_failure(invoke(*argv, code=1), f"{out} already exists; pass --force to replace it")
    assert out.read_bytes() == b"keep me"


def test_force_replaces(tmp_path: Path, resnet20_onnx: Path) -> None:
    out = tmp_path / "r20.opt.onnx"
    out.write_bytes(b"old")
    invoke("optimize", resnet20_onnx, "-o", out, "--force")
    assert load_onnx(out).graph.node  # the old bytes were replaced by a model
    # export's derived outputs (the default name, the INT8 file) follow the same policy
    int8 = tmp_path / "m_int8.onnx"
    int8.write_bytes(b"old")
    calib = tmp_path / "c.npy"
    import numpy as np

    np.save(calib, np.random.default_rng(0).standard_normal((4, 3, 32, 32)).astype(np.float32))
    result = invoke("export", "--depth", "20", "-o", tmp_path / "m.onnx", "--int8", "-c", calib, code=1)
    assert_clean_failure(result, "the INT8 model", "already exists")
    assert not (tmp_path / "m.onnx").exists() and int8.read_bytes() == b"old"


def test_every_command_that_writes_takes_force() -> None:
    import inspect

    from resnet_deploy_cli._errors import OUTPUT_PARAMS

    for command in app.registered_commands:
        params = inspect.signature(command.callback).parameters
        if set(params) & (set(OUTPUT_PARAMS) | {"repository"}):
            assert "force" in params, command.name


def test_models_lists_the_registry() -> None:
    from resnet_deploy._registry import list_models

    rows = json.loads(invoke("models", "--json").output)
    assert [r["name"] for r in rows] == list_models()
    by_name = {r["name"]: r for r in rows}
    # the paper's Table 6 (0.27M parameters for ResNet-20) and the usual ResNet-50 figures
    assert round(by_name["resnet20"]["parameters"] / 1e6, 2) == 0.27
    assert by_name["resnet50"]["parameters"] == 25_557_032 and round(by_name["resnet50"]["macs"] / 1e9, 2) == 4.09
    assert (by_name["resnet50"]["blocks"], by_name["resnet50"]["block"]) == (16, "bottleneck")
    assert (by_name["resnet1202"]["blocks"], by_name["resnet1202"]["shortcut"]) == (600, "zero-pad (A)")
    assert by_name["plain34"]["shortcut"] == "none"
    assert "resnet152" in invoke("models").output


def test_version_is_a_plain_flag() -> None:
    line = next(line for line in invoke("--help").output.splitlines() if "--version" in line)
    assert "<bool>" not in line and "Print the version" in line, line
    assert invoke("--version").output.startswith("resnet-deploy ")


def test_bench_clear_cache_removes_only_its_own_entries(tmp_path: Path) -> None:
    from resnet_deploy.bench.options import TRT_CACHE_KEY, make_cache_entry

    cached = make_cache_entry(tmp_path / "resnet20-0123456789abcdef", "0123456789abcdef")
    (cached / "int8.onnx").write_bytes(b"x" * 1000)
    make_cache_entry(tmp_path / "tensorrt", TRT_CACHE_KEY)
    (tmp_path / "mine").mkdir()
    (tmp_path / "notes.txt").write_text("keep")
    result = invoke("bench", "--clear-cache", "--cache-dir", tmp_path)
    assert "removed 2 cached entries" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "notes.txt"]
    assert "removed 0 cached entries" in invoke("bench", "--clear-cache", "--cache-dir", tmp_path / "none").output


@pytest.mark.parametrize("command", ["bench", "tune", "compare"])
def test_provider_is_an_alias_of_providers(command: str) -> None:
    # Wide enough that rich does not shorten the option's names ("--providers,--provi…").
    assert "--providers,--provider" in run_cli(command, "--help", env={"COLUMNS": "250"}).output.replace(" ", "")


# -- a new user's first hour: what the help, the cache, the reports and the names must not do -----

def test_help_markers_are_shown_not_read_as_markup() -> None:
    """Rich reads `[word]` in help text as a markup tag and drops it: quantize's '[required] unless
    --sensitivity' showed as 'Where to write the INT8 file.  unless --sensitivity'."""
    import re

    from typer.main import get_command

    group = get_command(app)
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        for param in command.params:
            text = getattr(param, "help", None) or ""
            assert not re.search(r"(?<!\\)\[[a-z#/@]", text), (name, param.name, text)
    output = run_cli("quantize", "--help", env={"COLUMNS": "250"}).output
    assert "[required] unless --sensitivity" in output


def test_bench_clear_cache_keeps_a_users_folders_of_cache_like_names(tmp_path: Path) -> None:
    """--cache-dir may be a folder of the user's. Only folders the benchmark marked when it made
    them go: a `tensorrt/` holding an SDK download or TensorRT-like files of the user's, a
    `photos-2024010112000000/`, an entry-like folder of our files without a marker, a marker
    whose key is not the folder's, a marked entry holding a file or link of the user's, a link
    to an entry and a file named like one are all kept."""
    import shutil

    from resnet_deploy.bench.options import CACHE_MARKER, TRT_CACHE_KEY, make_cache_entry

    ours = make_cache_entry(tmp_path / "resnet20-0123456789abcdef", "0123456789abcdef")
    for name in ("portable.onnx", "cpu.onnx", "int8.onnx", "int8_static_b8.onnx"):
        (ours / name).write_bytes(b"x" * 100)
    trt = make_cache_entry(tmp_path / "tensorrt", TRT_CACHE_KEY)
    (trt / "TensorrtExecutionProvider_cache_sm90.timing").write_bytes(b"t")
    (trt / "TensorrtExecutionProvider_TRTKernel_graph_main_0_0_sm90.engine").write_bytes(b"e")
    users = tmp_path / "mine"
    users.mkdir()
    (users / "tensorrt").mkdir()
    (users / "tensorrt" / "TensorRT-10.tar.gz").write_bytes(b"sdk")
    (users / "tensorrt" / "TensorrtExecutionProvider_cache_sm90.timing").write_bytes(b"a user's own, unmarked")
    (users / "photos-2024010112000000").mkdir()
    (users / "photos-2024010112000000" / "img.jpg").write_bytes(b"jpg")
    (users / "resnet50-00000000000000aa").mkdir()
    (users / "resnet50-00000000000000aa" / "portable.onnx").write_bytes(b"x")  # our file names, no marker
    forged = users / "resnet18-00000000000000ee"
    shutil.copytree(ours, forged)  # a marker, but for another key than its name's
    extra = make_cache_entry(users / "resnet56-00000000000000bb", "00000000000000bb")
    (extra / "link").symlink_to(users / "photos-2024010112000000")
    noted = make_cache_entry(users / "resnet34-00000000000000ff", "00000000000000ff")
    (noted / "notes.txt").write_text("mine")
    (users / "resnet32-00000000000000cc").symlink_to(ours)
    (users / "resnet44-00000000000000dd").write_text("a file")
    assert (forged / CACHE_MARKER).is_file()
    before = sorted(str(p.relative_to(users)) for p in users.rglob("*"))
    assert "removed 0 cached entries" in invoke("bench", "--clear-cache", "--cache-dir", users).output
    assert sorted(str(p.relative_to(users)) for p in users.rglob("*")) == before
    assert ours.is_dir()  # not through the link
    (users / "resnet32-00000000000000cc").unlink()
    result = invoke("bench", "--clear-cache", "--cache-dir", tmp_path)
    assert "removed 2 cached entries (0.0 MB)" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]


def test_a_cache_entry_is_marked_before_it_has_its_name(tmp_path: Path) -> None:
    """The benchmark marks each entry as it makes it, uses it again, and refuses a folder of that
    name that it did not make (it would otherwise write into it, and later clear it)."""
    from resnet_deploy import InputError
    from resnet_deploy.bench.options import CACHE_MARKER, make_cache_entry

    entry = make_cache_entry(tmp_path / "resnet20-0123456789abcdef", "0123456789abcdef")
    assert (entry / CACHE_MARKER).is_file() and sorted(p.name for p in tmp_path.iterdir()) == [entry.name]
    assert make_cache_entry(entry, "0123456789abcdef") == entry
    (tmp_path / "tensorrt").mkdir()
    with pytest.raises(InputError, match="the benchmark did not make it"):
        make_cache_entry(tmp_path / "tensorrt", "tensorrt")
    assert not (tmp_path / "tensorrt" / CACHE_MARKER).exists()
    # A run killed while making an entry leaves its staging folder (a marker and nothing else): cleared.
    staging = tmp_path / ".resnet18-00000000000000aa.k1ll3d00.tmp"
    staging.mkdir()
    (staging / CACHE_MARKER).write_bytes((entry / CACHE_MARKER).read_bytes())
    assert "removed 1 cached entry" in invoke("bench", "--clear-cache", "--cache-dir", tmp_path).output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tensorrt"]


def test_bench_plot_without_matplotlib_is_refused_before_any_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   resnet20_onnx: Path) -> None:
    """It used to measure everything, write --json, and only then fail on --plot."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name, *a))
    result = invoke("bench", resnet20_onnx, "--json", tmp_path / "b.json", "--plot", tmp_path / "b.png", code=1)
    assert result.output.strip() == "error: --plot needs matplotlib: pip install 'resnet-deploy[plot]'"
    assert list(tmp_path.iterdir()) == []


def test_compare_json_is_strict_when_a_side_computes_nan(tmp_path: Path, resnet20_onnx: Path) -> None:
    import numpy as np
    import onnx

    model = onnx.load(str(resnet20_onnx))
    t = next(t for t in model.graph.initializer if t.name == "conv1.weight")
    t.CopyFrom(onnx.numpy_helper.from_array(np.full_like(onnx.numpy_helper.to_array(t), np.nan), t.name))
    broken = tmp_path / "nan.onnx"
    onnx.save(model, str(broken))

    def strict(constant: str) -> None:
        raise AssertionError(f"bare {constant} in JSON")

    result = run_cli("compare", resnet20_onnx, broken, "--json")
    assert result.returncode == 0, result.output
    payload = json.loads(result.stdout, parse_constant=strict)
    assert payload["rows"][0]["max_rel_error"] is None and payload["first_over_tolerance"] == "stem"
    # a reference that computes NaN leaves nothing to measure against: refused, not rows of null
    result = run_cli("compare", broken, resnet20_onnx, "--json")
    assert (result.returncode == 1
            and "the reference nan.onnx on cpu computed non-finite values in block stem" in result.output)


def test_tune_notes_synthetic_int8_only_when_int8_was_measured(tmp_path: Path, resnet20_onnx: Path) -> None:
    result = invoke("tune", resnet20_onnx, "-o", tmp_path / "p.json", "--providers", "cpu", "--precision", "fp32",
                    "--duration", "0.2", "--rounds", "1")
    assert "winner" in result.output and "calibrated on synthetic inputs" not in result.output.replace("\n", " ")


def test_names_with_brackets_are_shown_as_they_are(tmp_path: Path, resnet20_onnx: Path, sample_image: Path) -> None:
    """Rich markup in a name: `cat[dog].png` was shown as `cat.png`, and a path `a[/x].onnx` ended
    optimize (after writing) and info in 'unexpected MarkupError', exit 2."""
    (tmp_path / "a[").mkdir()
    model = tmp_path / "a[" / "x].onnx"
    model.write_bytes(resnet20_onnx.read_bytes())
    image = tmp_path / "cat[dog].png"
    image.write_bytes(sample_image.read_bytes())
    wide = {"COLUMNS": "250"}
    assert str(model) in run_cli("info", model, env=wide).output
    result = run_cli("optimize", resnet20_onnx, "-o", tmp_path / "a[" / "y].onnx", env=wide)
    assert result.returncode == 0 and f"wrote {tmp_path / 'a[' / 'y].onnx'}" in result.output, result.output
    result = run_cli("predict", model, image, env=wide)
    assert result.returncode == 0 and str(image) in result.output.replace("\n", ""), result.output


def test_models_reads_the_shipped_catalogue_and_builds_nothing() -> None:
    """Issue 26 D.5: `models` built every model (12-14 s with torch installed); it reads the
    catalogue shipped with the package, which test_e2e holds equal to the registry."""
    import subprocess
    import sys

    code = ("import sys; from typer.testing import CliRunner; from resnet_deploy_cli.main import app; "
            "r = CliRunner().invoke(app, ['models', '--json']); assert r.exit_code == 0, r.output; "
            "print('torch' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "False"


def test_info_shows_the_models_metadata_before_the_optimizers(resnet20_onnx: Path) -> None:
    out = invoke("info", resnet20_onnx).stdout
    keys = [line.split("│")[1].strip() for line in out.splitlines() if line.startswith("│") and line.count("│") == 3]
    metadata = [k for k in (p.key for p in load_onnx(resnet20_onnx).metadata_props) if k in keys]
    ours = [keys.index(k) for k in metadata if not k.startswith("onnxsim.")]
    optimizers = [keys.index(k) for k in metadata if k.startswith("onnxsim.")]
    assert ours and optimizers and max(ours) < min(optimizers)
