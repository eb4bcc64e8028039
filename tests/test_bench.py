"""The benchmark harness measures correctly: complete records, sane order statistics, isolation."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from resnet_deploy.bench import RECORD_FIELDS, BenchOptions, plan_engines, plot, run_benchmark, to_csv, to_markdown
from resnet_deploy_cli.main import app


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory):
    cache = tmp_path_factory.mktemp("cache")
    options = BenchOptions(model="resnet20", batch_sizes=(1, 3), iterations=8, warmup=2, cache_dir=cache)
    return run_benchmark(options)


def test_records_are_complete_and_ordered(result) -> None:
    engines = {e.name for e in plan_engines(BenchOptions(model="resnet20"))}
    assert {r["engine"] for r in result.records} == engines
    assert len(result.records) == 2 * len(engines)
    for r in result.records:
        print({k: r[k] for k in ("engine", "batch_size", "p50_ms", "speedup_vs_eager", "max_rel_error")})
        assert r["error"] is None
        assert set(RECORD_FIELDS) <= set(r)
        assert 0 < r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"]
        assert r["iterations"] == 8
        assert r["images_per_s"] == pytest.approx(r["batch_size"] * 1000 / r["p50_ms"])
        assert r["session_create_ms"] > 0 and r["first_run_ms"] > 0 and r["peak_rss_mb"] > 10
        assert r["gflops"] > 0 and r["speedup_vs_eager"] > 0
        if r["precision"] == "fp32":
            assert r["max_rel_error"] < 1e-4
        if r["precision"] == "int8":
            assert r["synthetic_calibration"] is True and r["max_rel_error"] < 0.2
    eager = [r for r in result.records if r["engine"] == "pytorch-eager"]
    assert all(r["speedup_vs_eager"] == 1.0 and r["max_rel_error"] == 0.0 for r in eager)


def test_each_measurement_runs_in_its_own_process(result) -> None:
    pids = [r["worker_pid"] for r in result.records]
    assert len(set(pids)) == len(pids) and os.getpid() not in pids


def test_environment_is_recorded(result) -> None:
    env = result.environment
    assert env["cores"] >= 1 and env["cpu"] and "avx512f" in env["isa"]
    assert {"torch", "onnxruntime", "onnx"} <= set(env["versions"])


def test_reports(result, tmp_path: Path) -> None:
    rows = list(csv.DictReader(io.StringIO(to_csv(result.records))))
    assert len(rows) == len(result.records) and rows[0]["engine"]
    md = to_markdown(result)
    assert "| ort-full |" in md and "synthetic calibration" in md
    png = tmp_path / "plot.png"
    plot(result, png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    json.dumps(result.to_dict())


def test_eval_data_reports_accuracy(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    data = tmp_path / "eval.npz"
    np.savez(data, x=rng.standard_normal((5, 3, 32, 32), dtype=np.float32), y=np.arange(5))
    out = run_benchmark(BenchOptions(model="resnet20", batch_sizes=(2,), iterations=3, warmup=1, eval_data=data, engines=["ort-full"], cache_dir=tmp_path / "c"))
    accs = {r["engine"]: r["accuracy"] for r in out.records}
    assert set(accs) == {"pytorch-eager", "ort-full"}
    assert all(a is not None and 0 <= a <= 1 for a in accs.values())
    assert accs["pytorch-eager"] == accs["ort-full"]  # same predictions on the same model


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--batch-size", "0"], "batch sizes must be at least 1"),
        (["--batch-size", "-2"], "batch sizes must be at least 1"),
        (["--batch-size", "x"], "comma-separated integers"),
        (["--providers", "tpu"], "unknown provider 'tpu'"),
        (["--precision", "int4"], "unknown precision 'int4'"),
        (["--depth", "51"], "no ResNet of depth 51"),
    ],
)
def test_bad_input(args: list[str], needle: str) -> None:
    result = CliRunner().invoke(app, ["bench", "--model", "resnet20", *args] if "--depth" not in args else ["bench", *args])
    print(result.output)
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert needle in result.output


def test_unavailable_provider_and_unwritable_output(tmp_path: Path) -> None:
    import onnxruntime as ort

    runner = CliRunner()
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        r = runner.invoke(app, ["bench", "--model", "resnet20", "--providers", "cuda"])
        assert r.exit_code != 0 and "not available" in r.output
    r = runner.invoke(app, ["bench", "--model", "resnet20", "--json", str(tmp_path / "missing" / "b.json")])
    assert r.exit_code != 0 and "does not exist" in r.output and "Traceback" not in r.output
