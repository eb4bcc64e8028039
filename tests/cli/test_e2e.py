"""The real process: what only the console script, run as its own process, can show.

Marked ``e2e``: ``-m e2e`` runs them alone, ``-m "not slow and not e2e"`` leaves them out (a bare
``-m "not e2e"`` would replace the default ``-m "not slow"`` of pyproject's addopts). Everything else
about the CLI runs in-process (``tests/_cli_cases.py``); these check what ``main()`` adds around
the typer app, and what an in-process run cannot survive or see:

- exit status 130 after SIGINT/SIGTERM, with nothing left behind (``main()``'s SIGTERM handler);
- a closed stdout (``| head``): exit 0, not a word (``main()``'s flush and ``os._exit``);
- the installed ``resnet-deploy`` script, its exit statuses, and a few table rows through it;
- warnings as one ``warning:`` line (``main()``'s ``showwarning``);
- bit-flipped models: native code that crashes would take pytest down with it;
- the runtime install without torch, and onnxruntime's prints made from native code.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TypeVar

import numpy as np
import pytest

import resnet_deploy as rd

from .._cli_cases import CLI, Alias, Case, check_alias, check_bad_input, fill, run_subprocess
from .test_export_errors import ALIASES as EXPORT_ALIASES
from .test_export_errors import CASES as EXPORT_CASES
from .test_optimize_errors import ALIASES as OPTIMIZE_ALIASES
from .test_predict_errors import CASES as PREDICT_CASES

pytestmark = pytest.mark.e2e
T = TypeVar("T", Case, Alias)


def _rows(table: list[T], *ids: str) -> list[T]:
    chosen = [row for row in table if row.id in ids]
    assert [row.id for row in chosen] == list(ids)  # a renamed row must be renamed here too
    return chosen


# A few rows of each table through the real entry point: the in-process run and main() agree.
THROUGH_MAIN = [*_rows(EXPORT_CASES, "unknown-depth", "malicious-checkpoint"),
                *_rows(PREDICT_CASES, "predict-not-image", "meta-labels-count")]
ALIASES_THROUGH_MAIN = [*_rows(OPTIMIZE_ALIASES, "optimize-output-via-dotdot"),
                        *_rows(EXPORT_ALIASES, "export-output-hardlink-weights")]


@pytest.mark.parametrize("case", THROUGH_MAIN, ids=[c.id for c in THROUGH_MAIN])
def test_bad_input_rows_through_main(case: Case, files: dict[str, Path], tmp_path: Path) -> None:
    check_bad_input(case, files, tmp_path, run=run_subprocess)


@pytest.mark.parametrize("case", ALIASES_THROUGH_MAIN, ids=[c.id for c in ALIASES_THROUGH_MAIN])
def test_alias_rows_through_main(case: Alias, alias_sources: Path, tmp_path: Path) -> None:
    check_alias(case, alias_sources, tmp_path, run=run_subprocess)


def test_console_script_exit_statuses(tmp_path: Path) -> None:
    """The installed `resnet-deploy` (pyproject's [project.scripts]): 0 for --version, 2 for a
    usage error (click's, passed through main()'s os._exit), 1 for bad input in one line."""
    script = shutil.which("resnet-deploy", path=str(Path(sys.executable).parent))
    assert script is not None, "resnet-deploy is not installed beside this interpreter: pip install -e ."

    def run(*args: str | Path) -> subprocess.CompletedProcess:
        return subprocess.run([script, *map(str, args)], capture_output=True, text=True, timeout=120)

    version = run("--version")
    assert version.returncode == 0 and version.stdout == f"resnet-deploy {rd.__version__}\n", version
    usage = run("predict")
    assert usage.returncode == 2 and "Missing argument" in usage.stderr, usage
    bad = run("info", tmp_path / "nope.onnx")
    lines = bad.stderr.splitlines()
    assert (bad.returncode == 1 and len(lines) == 1 and lines[0].startswith("error: ONNX file not found")
            and "nope.onnx" in lines[0]), bad


def test_warnings_are_one_line(files: dict[str, Path]) -> None:
    """main() prints a warning as one `warning:` line, without Python's file:line and source excerpt."""
    result = run_subprocess("predict", files["nometa.onnx"], files["image.png"], "--provider", "cpu")
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    warned = [line for line in lines if line.startswith("warning:")]
    assert len(warned) == 1 and "nometa.onnx has no preprocessing metadata" in warned[0], result.stderr
    assert all(line.startswith(("warning:", "provider:")) for line in lines), result.stderr  # no file:line, no source


@pytest.fixture(scope="module")
def resnet50_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model whose calibration takes long enough to be interrupted half-way (exported once)."""
    from resnet_deploy.export.exporter import ExportOptions, export_model

    big = tmp_path_factory.mktemp("r50") / "r50.onnx"
    export_model(ExportOptions("resnet50"), big)
    return big


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("command", ["export", "quantize"])
def test_interrupt_leaves_nothing_behind(tmp_path: Path, request: pytest.FixtureRequest, sig: signal.Signals,
                                         command: str) -> None:
    out = tmp_path / "out.onnx"
    if command == "export":
        args = ["export", "--depth", "50", "-o", str(out)]
    else:
        args = ["quantize", str(request.getfixturevalue("resnet50_file")), "-c", str(tmp_path / "cal.npy"),
                "-o", str(out)]
        np.save(tmp_path / "cal.npy", np.random.default_rng(0).standard_normal((16, 3, 224, 224), dtype=np.float32))
    proc = subprocess.Popen([*CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # Interrupt once the work is under way (the progress line of a middle stage).
    deadline = time.time() + 120
    seen = ""
    while time.time() < deadline:
        line = proc.stderr.readline()
        seen += line
        if ("simplifying" in line) if command == "export" else ("calibrating" in line):
            break
    time.sleep(0.5)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    print(seen + err)
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file() and p.suffix != ".npy") == []


@pytest.mark.parametrize("args", [("info", "{model}", "--json"), ("predict", "{trained.onnx}", "{image.png}", "--json"),
                                  ("info", "{model}")], ids=["info-json", "predict-json", "info-tables"])
def test_closed_stdout_is_quiet(files: dict[str, Path], tmp_path: Path, args: tuple[str, ...]) -> None:
    """`resnet-deploy info --json | head -1`: the reader went away; exit 0 without a word."""
    argv = [fill(a, files, tmp_path, tmp_path / "out") for a in args]
    proc = subprocess.Popen([*CLI, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdout.close()  # no reader: every write to stdout is EPIPE
    err = proc.stderr.read()
    proc.wait(timeout=120)
    assert proc.returncode == 0 and err == "", err


@pytest.mark.parametrize("seed", range(6))
def test_bit_flipped_onnx_never_crashes(tmp_path: Path, resnet20_onnx: Path, sample_image: Path, seed: int) -> None:
    """Random bit flips: either a clean error or a clean (different) answer, never a crash."""
    data = bytearray(resnet20_onnx.read_bytes())
    rng = np.random.default_rng(seed)
    # Flip bits in the first 4 kB (graph structure, names, shapes) and a few anywhere.
    positions = list(rng.integers(0, min(4096, len(data)), 6)) + list(rng.integers(0, len(data), 4))
    for pos in positions:
        data[pos] ^= 1 << int(rng.integers(0, 8))
    bad = tmp_path / "flipped.onnx"
    bad.write_bytes(bytes(data))
    for args in (("info", bad), ("predict", bad, sample_image, "--provider", "cpu")):
        result = run_subprocess(*args)
        print(seed, args[0], result.returncode, result.stderr.strip()[:200])
        assert result.returncode in (0, 1), result.stderr
        assert "Traceback" not in result.stderr
        if result.returncode:
            assert "flipped.onnx" in result.stderr


def test_models_needs_no_torch() -> None:
    """The runtime-only install lists the zoo from the catalogue shipped as package data, which
    must equal the live one (regenerate it with python -m resnet_deploy._zoo_catalogue)."""
    from resnet_deploy._zoo_catalogue import shipped_catalogue
    from resnet_deploy.models import describe_models

    assert shipped_catalogue() == [r.to_dict() for r in describe_models()]
    blocked = ("import sys; sys.modules['torch'] = None; sys.argv = ['resnet-deploy', 'models', '--json']; "
               "from resnet_deploy_cli.main import main; main()")
    proc = subprocess.run([sys.executable, "-c", blocked], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == shipped_catalogue()


def test_quantize_keeps_onnxruntime_progress_off_stdout(tmp_path: Path, resnet20_onnx: Path) -> None:
    """onnxruntime's entropy calibrator prints its progress; stdout carries only our result."""
    calib = tmp_path / "c.npy"
    np.save(calib, np.random.default_rng(0).standard_normal((4, 3, 32, 32)).astype(np.float32))
    r = run_subprocess("quantize", resnet20_onnx, "-c", calib, "-o", tmp_path / "q.onnx", "--method", "entropy")
    assert r.returncode == 0, r.stderr
    assert "histogram" in r.stderr and "histogram" not in r.stdout
    assert r.stdout.startswith("wrote ")
    # what the agreement was measured on, and where accuracy is measured (issue 20 E6)
    line = " ".join(r.stdout.split())
    assert ("on the 4 inputs it was calibrated on (no test of accuracy: "
            "--eval-data DATA --max-accuracy-drop POINTS" in line), line
