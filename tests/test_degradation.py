"""The degradation benchmark's smoke run (one epoch, depth 20): it trains, deploys through the
toolkit's commands and writes its JSON and figure. The full run is a benchmark, not a test."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_one_epoch_smoke_run(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "degradation.py"), "--epochs", "1",
         "--depths", "20", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    payload = json.loads((tmp_path / "degradation.json").read_text())
    assert set(payload["curves"]) == {"plain20", "resnet20"}
    for name, runs in payload["curves"].items():
        assert len(runs) == 1 and len(runs[0]["train_error"]) == len(runs[0]["test_error"]) == 1
        assert 0.0 <= runs[0]["train_error"][0] <= 1.0 and 0.0 <= runs[0]["test_error"][0] <= 1.0
        deployed = payload["summary"][name]["deployed_accuracy"]
        assert 0.0 <= deployed["fp32"] <= 1.0 and 0.0 <= deployed["int8"] <= 1.0
        # the exported fp32 file is the trained model: its held-out accuracy is 1 - the last held-out
        # error, up to an image or two whose near-tied logits the export's 1e-6 error may flip
        assert deployed["fp32"] == pytest.approx(1.0 - runs[0]["test_error"][-1], abs=2.5 / 397)
    assert (tmp_path / "degradation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not any(p.suffix in (".onnx", ".pth") for p in tmp_path.rglob("*"))


def test_committed_results_are_not_replaced_unless_asked(tmp_path: Path) -> None:
    """The default --out is ./degradation-results, not benchmarks/results; a folder that holds a
    previous run's degradation.json is refused before any training, unless --force."""
    (tmp_path / "degradation.json").write_text("previous run")
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "degradation.py"),
                           "--out", str(tmp_path), "--epochs", "1"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "degradation.json already exists; pass --force" in proc.stderr, proc.stderr
    assert (tmp_path / "degradation.json").read_text() == "previous run"
    help_text = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "degradation.py"), "--help"],
                               capture_output=True, text=True, timeout=300).stdout
    assert "default ./degradation-results" in " ".join(help_text.split())
