"""triton: bad models and Triton numbers end in one line and no repository entry.

The rows run in-process (``tests/_cli_cases.py``); ``tests/cli/test_e2e.py`` runs a few through the
real entry point.
"""

from __future__ import annotations

from pathlib import Path

import os

import numpy as np
import onnx
import pytest

from resnet_deploy.runtime.session import THREADS_PER_CORE, cpu_count

from .._cli_cases import Alias, Case, check_alias, check_bad_input, note_lines, run_cli

CASES = [
    Case("triton-queue-delay-negative", ["triton", "{model}", "-r", "{tmp}/repo", "--queue-delay-us", "-5"],
         ["--queue-delay-us", "-5"], []),
    Case("triton-max-batch-huge", ["triton", "{model}", "-r", "{tmp}/repo", "--max-batch-size", str(10**10)],
         ["--max-batch-size", str(10**10)], []),
    Case("triton-instances-absurd",
         ["triton", "{model}", "-r", "{tmp}/repo", "--instances", "100000"], ["--instances", "100000"], []),
    # Each instance is a session (on the Python backend, a process) of its own: 256 of ResNet-20 were
    # accepted and would hold about 24 GB (the adversarial pass). At most 64, refused by name.
    *[Case(f"{command}-instances-{n}", [command, "{model}", *repo, "--instances", str(n)],
           ["--instances must be an integer from 1 to 64", f"received {n}"], [])
      for command, repo in (("triton", ["-r", "{tmp}/repo"]), ("serve", [])) for n in (65, 256)],
    Case("triton-corrupt", ["triton", "{corrupt.onnx}", "-r", "{tmp}/repo"], ["corrupt.onnx"], []),
    Case("triton-repo-is-file", ["triton", "{model}", "-r", "{tmp}/existing.onnx"],
         ["not a folder", "existing.onnx"], []),
    Case("triton-provider", ["triton", "{model}", "-r", "{tmp}/repo", "--provider", "tpu"],
         ["unknown provider 'tpu'"], []),
    # targets and batches mean what they say: what cannot be honoured is refused, saying what to do
    Case("triton-fixed-batch-asked-to-batch",
         ["triton", "{static8.onnx}", "-r", "{tmp}/repo", "--max-batch-size", "32"],
         ["static8.onnx has a fixed batch of 8: Triton cannot batch it",
          "pass --max-batch-size 0 or re-export with a dynamic batch"], []),
    # serve's request bound, refused by its own name before any server starts (the adversarial pass:
    # nan and inf ended in 'unexpected ValueError', 0 and -1 became 1 byte and refused every request)
    *[Case(f"serve-max-request-mb-{v}", ["serve", "{model}", "--max-request-mb", v],
           ["--max-request-mb must be a number above 0 and at most", f"received {r}"], [])
      for v, r in (("nan", "nan"), ("inf", "inf"), ("0", "0.0"), ("-1", "-1.0"), ("1e30", "1e+30"))],
    # More threads than this machine's cores allow: Triton started, then failed to load, naming no option.
    Case("serve-threads-over-the-cores", ["serve", "{model}", "--threads", str(THREADS_PER_CORE * cpu_count() + 1)],
         ["--threads must be at most", f"received {THREADS_PER_CORE * cpu_count() + 1}"], []),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_table(case: Case, files: dict[str, Path], tmp_path: Path) -> None:
    check_bad_input(case, files, tmp_path)


ALIASES = [
    Alias("triton-model-inside-entry", ["triton", "repo/m/1/model.onnx", "-r", "repo", "--name", "m", "--force"],
          ["repo/m/1/model.onnx", "Triton entry"]),
]


@pytest.mark.parametrize("case", ALIASES, ids=[c.id for c in ALIASES])
def test_output_never_aliases_an_input(case: Alias, alias_sources: Path, tmp_path: Path) -> None:
    check_alias(case, alias_sources, tmp_path)


def test_triton_entry_names_and_modes(files: dict[str, Path], tmp_path: Path) -> None:
    """A file named `..onnx` would make the entry the repository itself: refused. An entry gets
    the user's umask, not mkdtemp's 0700 (Triton often runs as another user)."""
    dots = tmp_path / "..onnx"
    dots.write_bytes(files["model"].read_bytes())
    repo = tmp_path / "repo"
    result = run_cli("triton", dots, "-r", repo)
    assert (result.returncode == 1 and "not a valid entry name" in result.stderr
            and "..onnx" in result.stderr), result.stderr
    assert not repo.exists()
    previous = os.umask(0o022)
    try:
        result = run_cli("triton", files["model"], "-r", repo, "--name", "m")
    finally:
        os.umask(previous)
    assert result.returncode == 0, result.stderr
    assert oct((repo / "m").stat().st_mode & 0o777) == oct(0o755)
    assert oct((repo / "m" / "1" / "model.onnx").stat().st_mode & 0o777) == oct(0o644)


def test_fixed_batch_model_in_triton_and_quantize(files: dict[str, Path], tmp_path: Path) -> None:
    """A fixed batch of 8: Triton's default batching becomes max_batch_size 0 with one note line
    (an explicit --max-batch-size is refused: the bad-input table); quantize calibrates in
    batches of 8 and the INT8 file keeps the fixed batch."""
    repo = tmp_path / "repo"
    result = run_cli("triton", files["static8.onnx"], "-r", repo)
    assert result.returncode == 0, result.stderr
    notes = note_lines(result.stderr)
    assert len(notes) == 1 and "static8.onnx has a fixed batch of 8: wrote max_batch_size 0" in notes[0], result.stderr
    assert "max_batch_size: 0" in (repo / "static8" / "config.pbtxt").read_text()
    result = run_cli("triton", files["static8.onnx"], "-r", repo, "--name", "zero", "--max-batch-size", "0")
    assert result.returncode == 0 and note_lines(result.stderr) == [], result.stderr
    int8 = tmp_path / "int8.onnx"
    result = run_cli("quantize", files["static8.onnx"], "-c", files["calib.npy"], "-o", int8)
    assert result.returncode == 0, result.stderr
    assert onnx.load(str(int8)).graph.input[0].type.tensor_type.shape.dim[0].dim_value == 8
    # the accuracy-aware path evaluates in batches of 8 too (13 samples: the last batch filled up)
    eval_data = tmp_path / "eval.npz"
    np.savez(eval_data, x=np.random.default_rng(2).standard_normal((13, 3, 32, 32), dtype=np.float32),
             y=np.arange(13) % 10)
    result = run_cli("quantize", files["static8.onnx"], "-c", files["calib.npy"], "-o", tmp_path / "aware.onnx",
                     "--eval-data", eval_data, "--max-accuracy-drop", "100")
    assert result.returncode == 0 and "kept in float: no block" in " ".join(result.stdout.split()), result.stderr
