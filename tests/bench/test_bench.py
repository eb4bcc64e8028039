"""The benchmark harness measures correctly: complete records, sane order statistics, isolation,
memory that is each engine's own, ONNX files as they are, interleaved rounds, throughput mode."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from resnet_deploy.bench import RECORD_FIELDS, BenchOptions, plan_engines, plot, run_benchmark, to_csv, to_markdown
from resnet_deploy_cli.main import app

from ..conftest import legacy_export


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def result(cache: Path):
    options = BenchOptions(model="resnet20", batch_sizes=(1, 3), iterations=8, rounds=2, warmup=2, cache_dir=cache)
    return run_benchmark(options)


@pytest.fixture(scope="module")
def foreign_r18(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A torchvision-style ResNet-18 from the TorchScript exporter: no metadata, BN and Identity nodes."""
    from resnet_deploy import create_model

    return legacy_export(create_model("resnet18"), 224, tmp_path_factory.mktemp("foreign") / "tv_resnet18.onnx")


def test_records_are_complete_and_ordered(result) -> None:
    engines = {e.name for e in plan_engines(BenchOptions(model="resnet20"))}
    assert {r.engine for r in result.records} == engines
    assert len(result.records) == 2 * len(engines)
    assert result.baseline == "pytorch-eager"
    for r in result.records:
        print(r.engine, r.batch_size, r.p50_ms, r.speedup_vs_baseline, r.speedup_min, r.speedup_max, r.max_rel_error)
        assert r.error is None
        assert 0 < r.p50_ms <= r.p90_ms <= r.p99_ms
        assert r.iterations == 8 and r.rounds == 2
        assert r.images_per_s == pytest.approx(r.batch_size * 1000 / r.p50_ms)
        assert r.session_create_ms > 0 and r.first_run_ms > 0 and r.peak_rss_mb >= r.rss_mb > 10
        assert r.gflops > 0 and r.speedup_vs_baseline > 0 and r.baseline == "pytorch-eager"
        assert 0 < r.speedup_min <= r.speedup_max
        assert r.unstable == (r.unstable_reason is not None)
        if r.precision == "fp32":
            assert r.max_rel_error < 1e-4
        if r.precision == "int8":
            assert r.synthetic_calibration is True and r.max_rel_error < 0.2
    eager = [r for r in result.records if r.engine == "pytorch-eager"]
    assert all(r.speedup_vs_baseline == 1.0 == r.speedup_min == r.speedup_max and r.max_rel_error == 0.0 for r in eager)


def test_a_zoo_run_reports_the_cache_it_grew(result, cache: Path) -> None:
    """The exports (INT8 ones included) stay cached between runs: after a zoo run bench says how
    much the cache holds, and that --clear-cache removes it."""
    from resnet_deploy.bench.cache import cache_usage

    r = CliRunner().invoke(app, ["bench", "--model", "resnet20", "--engines", "ort-full", "--iterations", "2",
                                 "--rounds", "1", "--warmup", "0", "--cache-dir", str(cache)])
    assert r.exit_code == 0, r.output
    entries, size = cache_usage(cache)
    assert entries >= 1 and size > 100_000  # resnet20's exports: ~1 MB each
    line = " ".join(r.output.split())
    assert (f"note: the bench cache {cache} holds {entries} " in line
            and f"{size / 1e6:.1f} MB; resnet-deploy bench --clear-cache" in line)


def test_each_engine_and_batch_runs_in_its_own_process(result) -> None:
    pids = [r.worker_pid for r in result.records]
    assert len(set(pids)) == len(pids) and os.getpid() not in pids


def _cpuinfo_flags() -> set[str]:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()


@pytest.mark.skipif(not Path("/proc/cpuinfo").exists(), reason="needs /proc/cpuinfo")
def test_environment_is_recorded(result) -> None:
    env = result.environment
    flags = _cpuinfo_flags()
    assert env["isa"] and env["isa"] == {name: name in flags for name in env["isa"]}
    assert env["cores"] == len(os.sched_getaffinity(0)) and env["cpu"]
    assert {"torch", "onnxruntime", "onnx"} <= set(env["versions"])
    for key in ("loadavg_start", "loadavg_end"):
        assert len(env[key]) == 3 and all(v >= 0 for v in env[key])


def test_reports(result, tmp_path: Path) -> None:
    rows = list(csv.DictReader(io.StringIO(to_csv(result.records))))
    assert len(rows) == len(result.records) and tuple(rows[0]) == RECORD_FIELDS
    full = next(r for r in rows if r["engine"] == "ort-full")
    assert float(full["speedup_min"]) <= float(full["speedup_max"]) and full["baseline"] == "pytorch-eager"
    md = to_markdown(result)
    assert ("| ort-full" in md and "synthetic calibration" in md and "per-round range" in md
            and "speed-up vs baseline" in md)
    png = tmp_path / "plot.png"
    plot(result, png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads(json.dumps(result.to_dict()))
    assert data["baseline"] == "pytorch-eager" and data["unstable_thresholds"] == {"p90_p50": 1.5, "round_spread": 1.3}
    assert set(data["results"][0]) == set(RECORD_FIELDS)


def test_eval_data_reports_accuracy(tmp_path: Path, cache: Path) -> None:
    rng = np.random.default_rng(0)
    data = tmp_path / "eval.npz"
    np.savez(data, x=rng.standard_normal((5, 3, 32, 32), dtype=np.float32), y=np.arange(5))
    out = run_benchmark(BenchOptions(model="resnet20", batch_sizes=(2,), iterations=3, warmup=1, eval_data=data,
                                     engines=["ort-full"], cache_dir=cache))
    accs = {r.engine: r.accuracy for r in out.records}
    assert set(accs) == {"pytorch-eager", "ort-full"}
    assert all(a is not None and 0 <= a <= 1 for a in accs.values())
    assert accs["pytorch-eager"] == accs["ort-full"]  # same predictions on the same model


def test_memory_is_each_engines_own(resnet18_onnx: Path, foreign_r18: Path) -> None:
    """Eager PyTorch (torch loaded) peaks above every onnxruntime worker, which never imports
    torch; and no worker reports this (parent) process's peak, as ru_maxrss after execve did."""
    out = run_benchmark(BenchOptions(files=[resnet18_onnx, foreign_r18], iterations=4, rounds=2, warmup=1))
    records = {r.engine: r for r in out.records}
    for r in out.records:
        print(r.engine, r.peak_rss_mb, r.rss_mb, r.torch_imported, r.error)
        assert r.error is None and r.peak_rss_mb >= r.rss_mb > 0
    eager = records.pop("pytorch-eager")
    assert out.baseline == "pytorch-eager" and eager.torch_imported is True
    assert set(records) == {"resnet18", "tv_resnet18"}
    assert all(r.torch_imported is False for r in records.values())
    assert eager.peak_rss_mb > max(r.peak_rss_mb for r in records.values())
    peaks = [r.peak_rss_mb for r in out.records]
    assert len(set(peaks)) == len(peaks)
    with open("/proc/self/status") as fh:
        parent_peak = next(int(line.split()[1]) / 1024 for line in fh if line.startswith("VmHWM:"))
    assert all(r.peak_rss_mb < parent_peak for r in records.values())
    assert records["tv_resnet18"].max_rel_error < 1e-4  # the same weights, rebuilt by create_model


def test_onnxruntime_worker_imports_no_torch() -> None:
    code = "import sys, resnet_deploy.bench.worker, resnet_deploy.bench.backends; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_third_party_file_without_metadata_is_its_own_baseline(foreign_r18: Path, tmp_path: Path) -> None:
    report = tmp_path / "b.json"
    r = CliRunner().invoke(app, ["bench", str(foreign_r18), "--providers", "cpu", "--iterations", "3", "--rounds", "1",
                                 "--warmup", "1", "--json", str(report)])
    print(r.output)
    assert r.exit_code == 0, r.output
    data = json.loads(report.read_text())
    assert data["baseline"] == "tv_resnet18" and "no architecture metadata" in data["baseline_note"]
    (record,) = data["results"]
    assert record["engine"] == "tv_resnet18" and record["speedup_vs_baseline"] == 1.0 and record["max_rel_error"] == 0.0
    assert record["source"] == str(foreign_r18)
    assert record["torch_imported"] is False
    assert "tv_resnet18" in r.output


def test_static_batch_must_match(resnet20_onnx: Path, tmp_path: Path) -> None:
    import onnx

    model = onnx.load(str(resnet20_onnx))
    for value in (model.graph.input[0], model.graph.output[0]):
        value.type.tensor_type.shape.dim[0].Clear()
        value.type.tensor_type.shape.dim[0].dim_value = 1
    static = tmp_path / "static1.onnx"
    onnx.save(model, str(static))
    r = CliRunner().invoke(app, ["bench", str(static), "-b", "1,4"])
    lines = [line for line in r.output.splitlines() if line.strip()]
    assert r.exit_code == 1 and lines == ["error: static1.onnx has a static batch of 1; batch size 4 was asked for "
                                          "(use --batch-size 1)"]


SLOW_ROUND = textwrap.dedent('''
    # Test hook, loaded by every Python started with this folder on PYTHONPATH: the worker whose
    # spec file names $SLOW_ENGINE sleeps 30 ms in each timed run of its second round.
    import os, sys, time
    import resnet_deploy.bench.timing as timing

    _real, _calls = timing.time_round, [0]

    def time_round(call, **kwargs):
        _calls[0] += 1
        target = "spec-" + os.environ["SLOW_ENGINE"] + "-b"
        if _calls[0] == 2 and any(target in arg for arg in sys.argv):
            def slow():
                time.sleep(0.03)
                call()
            return _real(slow, **kwargs)
        return _real(call, **kwargs)

    timing.time_round = time_round
''')


def test_a_slow_baseline_round_is_flagged(resnet20_onnx: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "sitecustomize.py").write_text(SLOW_ROUND)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("SLOW_ENGINE", "pytorch-eager")
    out = run_benchmark(BenchOptions(files=[resnet20_onnx], iterations=24, rounds=3, warmup=2))
    records = {r.engine: r for r in out.records}
    ort, eager = records["resnet20"], records["pytorch-eager"]
    print(ort.speedup_min, ort.speedup_max, ort.unstable_reason, eager.unstable_reason)
    assert ort.unstable and "round ratios" in ort.unstable_reason
    assert ort.speedup_max / ort.speedup_min > 1.3
    assert eager.p90_ms > 30  # a third of the baseline's runs slept
    md = to_markdown(out)
    assert "resnet20!" in md and "unstable: " in md


def test_throughput_mode(resnet20_onnx: Path) -> None:
    out = run_benchmark(BenchOptions(files=[resnet20_onnx], mode="throughput", concurrency=[1, 2], iterations=16,
                                     rounds=2, warmup=1, batch_sizes=(2,), threads=2))
    assert sorted((r.engine, r.concurrency) for r in out.records) == [
        ("pytorch-eager", 1), ("pytorch-eager", 2), ("resnet20", 1), ("resnet20", 2)]
    for r in out.records:
        print(r.engine, r.concurrency, r.threads, r.images_per_s, r.p50_ms, r.p99_ms, r.mean_ms)
        assert r.error is None and r.mode == "throughput" and r.iterations == 16
        assert r.threads == 2 // r.concurrency and r.p50_ms <= r.p99_ms and r.images_per_s > 0
        # requests in flight at once: the summed request time over the wall time
        in_flight = r.mean_ms * r.images_per_s / (1000 * r.batch_size)
        assert in_flight == pytest.approx(1.0, abs=0.25) if r.concurrency == 1 else in_flight > 1.3
    assert "| concurrency |" in to_markdown(out)


def test_table_fits_80_columns(result, monkeypatch: pytest.MonkeyPatch) -> None:
    """bench's printout on an 80-column console that is not a terminal (redirected output with
    COLUMNS=80): no cell cut to '…', no line over 80 characters. In process, on the module's run."""
    import io

    from rich.console import Console

    import resnet_deploy_cli.bench as cli_bench

    out = io.StringIO()
    monkeypatch.setattr(cli_bench, "console", Console(file=out, width=80, highlight=False))
    cli_bench._print(result)  # noqa: SLF001 - what the command prints
    text = out.getvalue()
    print(text)
    assert "ort-full" in text and "pytorch-channels-last" in text and "…" not in text
    assert max(len(line) for line in text.splitlines()) <= 80


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--batch-size", "0"], "batch sizes must be at least 1"),
        (["--batch-size", "-2"], "batch sizes must be at least 1"),
        (["--batch-size", "x"], "comma-separated integers"),
        (["--providers", "tpu"], "unknown provider 'tpu'"),
        (["--precision", "int4"], "unknown precision 'int4'"),
        (["--depth", "51"], "no ResNet of depth 51"),
        (["--duration", "nan"], "--duration must be a finite number"),
        (["--duration", "inf"], "--duration must be a finite number"),
        (["--duration", "0"], "--duration must be positive"),
        (["--duration", "-1"], "--duration must be between 0 and 3600"),
        (["--duration", "4000"], "--duration must be between 0 and 3600"),
        (["--iterations", "0"], "--iterations must be between 1 and 1000000"),
        (["--iterations", "2000000"], "--iterations must be between 1 and 1000000"),
        (["--iterations", "3", "--rounds", "4"], "--rounds (4) cannot exceed --iterations (3)"),
        (["--warmup", "-1"], "--warmup must be between 0 and 10000"),
        (["--threads", "0"], "--threads (this process may use"),
        (["--threads", "100000"], "--threads (this process may use"),
        (["--rounds", "0"], "--rounds must be between 1 and 100"),
        (["--rounds", "1000"], "--rounds must be between 1 and 100"),
        (["--mode", "fast"], "unknown mode 'fast'"),
        (["--concurrency", "2"], "--concurrency applies to --mode throughput"),
        (["--mode", "throughput", "--concurrency", "0"], "--concurrency must be between 1 and"),
        (["--mode", "throughput", "--concurrency", "1,100000"], "--concurrency must be between 1 and"),
    ],
)
def test_bad_input(args: list[str], needle: str) -> None:
    result = CliRunner().invoke(app, ["bench", "--model", "resnet20", *args] if "--depth" not in args
                                else ["bench", *args])
    print(result.output)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1 and len(lines) == 1 and lines[0].startswith("error: ")
    assert needle in lines[0]


def test_files_refuse_zoo_options(resnet20_onnx: Path) -> None:
    for args in (["--depth", "18"], ["--calibration", str(resnet20_onnx)], ["--engines", "ort-full"]):
        r = CliRunner().invoke(app, ["bench", str(resnet20_onnx), *args])
        assert r.exit_code == 1 and r.output.startswith("error: "), r.output


def test_unavailable_provider_and_unwritable_output(tmp_path: Path) -> None:
    import onnxruntime as ort

    runner = CliRunner()
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        r = runner.invoke(app, ["bench", "--model", "resnet20", "--providers", "cuda"])
        assert r.exit_code != 0 and "not available" in r.output
    r = runner.invoke(app, ["bench", "--model", "resnet20", "--json", str(tmp_path / "missing" / "b.json")])
    assert r.exit_code != 0 and "does not exist" in r.output and "Traceback" not in r.output
