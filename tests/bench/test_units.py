"""The benchmark's pieces without running a model: catalogue and backends agree, the protocol
round-trips, the instability flag and the 80-column table."""

from __future__ import annotations

import dataclasses
import io

import pytest
from rich.console import Console

from resnet_deploy.bench.backends import OpenVINORuntimeBackend, BACKENDS, PyTorchBackend
from resnet_deploy.bench.catalogue import CATALOGUE, OPENVINO_RUNTIME
from resnet_deploy.bench.model_files import ARTIFACTS
from resnet_deploy.bench.report import NoteKind, fit_columns, footnotes
from resnet_deploy.bench.schema import (
    BenchResult, Engine, FinishRequest, Ready, Record, RoundRequest, RoundResult, WorkerSpec, decode, encode,
)
from resnet_deploy.bench.stats import instability, ratio, summarise
from resnet_deploy.runtime import SessionConfig
from resnet_deploy_cli.bench import _table


def test_catalogue_engines_name_a_backend_and_its_options() -> None:
    names = [e.engine.name for e in CATALOGUE]
    assert len(names) == len(set(names))
    session_fields = {f.name for f in dataclasses.fields(SessionConfig)} - {"provider", "threads"}
    for entry in CATALOGUE:
        engine = entry.engine
        assert engine.backend in BACKENDS, engine.name
        if engine.backend == "onnxruntime":
            assert engine.artifact in ARTIFACTS and set(engine.options) <= session_fields, engine.name
        elif engine.backend == OPENVINO_RUNTIME:
            assert engine.artifact in ARTIFACTS and set(engine.options) <= OpenVINORuntimeBackend.OPTIONS, engine.name
        else:
            assert engine.artifact is None and set(engine.options) <= PyTorchBackend.OPTIONS, engine.name


def test_tune_measures_the_catalogue_under_its_names() -> None:
    """One configuration, one name: every tune candidate is a catalogue entry (only its artifact
    made a path), and what its profile records runs it as measured."""
    from pathlib import Path

    from resnet_deploy.profile.deployment import check_session
    from resnet_deploy.tune.candidates import candidates

    files = {name: Path(f"/m/{name}.onnx") for name in ("portable", "int8", "int8_static", "fp16")}
    every = {"cpu-bf16", "ov-ep", "ov-runtime"}
    chosen = candidates(files, ["cpu", "openvino", "cuda", "tensorrt"], {"fp32", "bf16", "fp16", "int8"}, 4, caps=every)
    entries = {e.engine.name: e for e in CATALOGUE}
    assert chosen[0].engine.name == "ort-fp32" and len(chosen) == sum(e.tune for e in CATALOGUE)
    for c in chosen:
        entry = entries[c.engine.name]
        assert entry.tune and c.engine == dataclasses.replace(entry.engine, artifact=str(files[entry.engine.artifact]))
        assert set(c.session) <= session_fields_of_config(), c.engine.name
        check_session({**c.session, "threads": 2})  # what the profile records, its schema accepts
        assert c.engine.backend in ("onnxruntime", OPENVINO_RUNTIME)  # the profile's and Predictor's backend names
    sessions = {c.engine.name: c.session for c in chosen}
    assert sessions["ov-bf16"] == sessions["ov-ep-bf16"] == {"openvino_precision": "BF16"}
    assert sessions["ov-int8-static"] == {"static_batch": 4} and sessions["trt-fp16"] == {"fp16": True}
    names = [c.engine.name for c in candidates(files, ["cpu", "openvino"],
                                               {"fp32", "bf16", "int8"}, 1, caps={"ov-runtime"})]
    assert names == ["ort-fp32", "ort-int8", "ort-int8-static", "ov-fp32", "ov-int8", "ov-int8-static"]


def session_fields_of_config() -> set[str]:
    return {f.name for f in dataclasses.fields(SessionConfig)} - {"provider"}


def test_protocol_round_trips() -> None:
    engine = Engine("ort-full", "onnxruntime", "cpu", "fp32", "cpu", {"optimization": "all"}, "d")
    spec = WorkerSpec(engine, 8, 2, 1, "in.npy", "out.npy", 3, model_path="m.onnx")
    assert WorkerSpec.from_json(spec.to_json()) == spec
    for message in (RoundRequest(duration=0.5, min_iterations=2), FinishRequest(), Ready(1, 2.0, 3.0, False),
                    RoundResult([1.0, 2.0], 0.1, 16)):
        assert decode(encode(message)) == message
    with pytest.raises(ValueError):
        decode('{"type": "Nope"}')


def _rounds(*latencies: list[float]) -> list[RoundResult]:
    return [RoundResult(list(ms), sum(ms) / 1000, len(ms)) for ms in latencies]


def test_instability_flags_a_long_tail_and_disagreeing_rounds() -> None:
    steady = _rounds([10, 10, 11], [10, 10, 11], [10, 11, 10])
    fast = _rounds([5, 5, 5], [5, 5, 6], [5, 5, 5])
    assert instability(summarise(steady, 1, "latency"), ratio(fast, steady, 1, "latency")) is None
    # the baseline's second round ran on a busy machine: the ratio of that round jumps
    busy = _rounds([10, 10, 11], [30, 31, 30], [10, 11, 10])
    spread = ratio(fast, busy, 1, "latency")
    assert spread.low == pytest.approx(2.0, rel=0.1) and spread.high == pytest.approx(6.0, rel=0.1)
    assert "round ratios" in instability(summarise(fast, 1, "latency"), spread)
    tail = _rounds([10] * 8 + [40, 40])
    assert "p90/p50" in instability(summarise(tail, 1, "latency"), None)


def test_headline_ratio_lies_inside_its_per_round_range() -> None:
    """Rounds of unequal size: the pooled medians' ratio (10 ms / 6 ms = 1.67x) fell outside
    the per-round range 2.5-5x; the headline is the median of the per-round ratios."""
    baseline = _rounds([10] * 9, [30])
    engine = _rounds([4], [6] * 9)
    r = ratio(engine, baseline, 1, "latency")
    assert r.per_round == pytest.approx((2.5, 5.0))
    assert r.low <= r.overall <= r.high and r.overall == pytest.approx(3.75)
    odd = ratio(_rounds([5], [5], [5]), _rounds([10], [40], [15]), 1, "latency")
    assert odd.overall == pytest.approx(3.0)  # the middle round, not a mean


def _record(engine: str, **kw) -> Record:
    base = dict(provider="cpu", precision="fp32", batch_size=32, p50_ms=4093.12, p90_ms=5000.5, p99_ms=6000.25,
                images_per_s=7.8, baseline="pytorch-eager", speedup_vs_baseline=1.0, speedup_min=1.0, speedup_max=1.0,
                rounds=5, iterations=50, peak_rss_mb=1070.7, rss_mb=1000.2, max_rel_error=7.5e-7, gflops=1234.0,
                accuracy=0.9924)
    return Record(engine, **{**base, **kw})


def test_table_fits_80_columns_without_cut_cells() -> None:
    records = [
        _record("pytorch-eager"),
        _record("pytorch-channels-last", speedup_vs_baseline=1.49, speedup_min=1.2, speedup_max=1.7, unstable=True,
                unstable_reason="round ratios 1.20-1.70x (max/min 1.42 > 1.3)"),
        _record("openvino-int8-static", precision="int8", speedup_vs_baseline=51.5, speedup_min=10.27, speedup_max=60.1,
                synthetic_calibration=True, unstable=True, unstable_reason="p90/p50 9.51 > 1.5"),
        _record("ort-cuda-fp16", provider="cuda", error="worker exited with 1: no GPU"),
    ]
    result = BenchResult(records, {}, {"model": "resnet50"}, "pytorch-eager", "eager PyTorch fp32 on the CPU")
    chosen = [c.key for c in fit_columns(records, 80)]
    assert chosen[:2] == ["engine", "batch_size"] and "speedup_vs_baseline" in chosen and "p50_ms" in chosen
    out = io.StringIO()
    console = Console(file=out, width=80, color_system=None)
    console.print(_table(result, console.width))
    for note in footnotes(result):
        console.print(note.line)
    text = out.getvalue()
    print(text)
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= 80
    assert "openvino-int8-static*!" in text and "pytorch-channels-last!" in text and "51.50x" in text
    assert "ort-cuda-fp16 b32 failed" in text
    # The terminal colours notes by kind, never by their words: the unstable rows are items of one note.
    kinds = [(n.kind, n.item) for n in footnotes(result)]
    assert kinds == [(NoteKind.INFO, False), (NoteKind.INFO, False), (NoteKind.UNSTABLE, False),
                     (NoteKind.UNSTABLE, True), (NoteKind.UNSTABLE, True), (NoteKind.FAILED, False)], kinds


def test_markdown_cells_keep_their_table() -> None:
    """A file named `a|b.onnx` (the engine `a|b`) and an error message of several lines each stay
    in their own cell: every row has as many cells as the header."""
    from resnet_deploy.bench.report import to_markdown

    records = [_record("pytorch-eager"), _record("a|b", speedup_vs_baseline=8.0),
               _record("ort-cuda", provider="cuda", error="worker exited with 1:\nline two | more")]
    md = to_markdown(BenchResult(records, {}, {"model": "resnet50"}, "pytorch-eager", "eager PyTorch fp32 on the CPU"))
    print(md)
    rows = [line for line in md.splitlines() if line.startswith("|")]
    cells = [len(line.replace("\\|", "").split("|")) for line in rows]
    assert len(rows) == 5 and len(set(cells)) == 1, cells
    assert "| a\\|b |" in md and "failed: worker exited with 1: line two \\| more |" in md
