"""A deployment profile is data: every field typed and bounded, the session an allow-list, and
the model it names run exactly as tuned (the bytes hashed are the bytes run, external data
included). Profiles are written here with :func:`save_profile` for a real exported model; no
tune run is needed to test how one is read."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

from resnet_deploy._hashing import file_sha256
from resnet_deploy._machine import machine
from resnet_deploy.profile.deployment import (
    SESSION_FIELDS, DeploymentProfile, ProfileError, load_profile, model_sha256, save_profile,
)
from resnet_deploy.runtime import Predictor, SessionConfig


def _profile(model: Path, **session: Any) -> DeploymentProfile:
    return DeploymentProfile(model=model.name, model_sha256=model_sha256(model), provider="cpu", backend="onnxruntime",
                             precision="fp32", batch_size=1, session={"optimization": "all", "threads": 1, **session},
                             measured={"p50_ms": 1.5, "accuracy": None, "candidate": "ort-fp32"}, machine=machine(),
                             source_model=str(model), candidates=[{"engine": "ort-fp32", "verified": True}])


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory, resnet20_onnx: Path) -> dict[str, Path]:
    """A profile for a single-file model, and one for the same model with external data."""
    folder = tmp_path_factory.mktemp("profile")
    single = folder / "model.onnx"
    single.write_bytes(resnet20_onnx.read_bytes())
    save_profile(_profile(single), folder / "p.json")
    ext = folder / "ext"
    ext.mkdir()
    proto = onnx.load(str(resnet20_onnx))
    onnx.save(proto, str(ext / "model.onnx"), save_as_external_data=True, location="model.onnx.data", size_threshold=0)
    save_profile(_profile(ext / "model.onnx"), ext / "p.json")
    return {"single": folder / "p.json", "model": single, "external": ext / "p.json", "data": ext / "model.onnx.data"}


def _cli(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "resnet_deploy_cli.main", *map(str, args)], capture_output=True,
                          text=True, timeout=300)


def _x() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((2, 3, 32, 32), dtype=np.float32)


def test_a_written_profile_reads_back_and_runs(tuned: dict[str, Path], resnet20_onnx: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with Predictor(resnet20_onnx, provider="cpu") as plain:
            reference = plain.run(_x())
        for key in ("single", "external"):
            with Predictor.from_profile(tuned[key]) as p:
                assert p.profile == load_profile(tuned[key])
                np.testing.assert_array_equal(p.run(_x()), reference)
    # A single file's digest is its SHA-256, as profiles have always recorded (old ones still load).
    assert load_profile(tuned["single"]).model_sha256 == file_sha256(tuned["model"])


# -- every field's type and range; the session an allow-list --------------------------------------

BAD_FIELDS = [
    # what the profile says, and what the one-line refusal must name
    ({"session": {"profile_dir": "/tmp/traces"}}, "field 'session.profile_dir' is not one a profile may set"),
    ({"session": {"trt_cache_dir": "/tmp/engines"}}, "field 'session.trt_cache_dir' is not one a profile may set"),
    ({"session": {"extra": {"session.use_env_allocators": "1"}}}, "field 'session.extra' is not one a profile may set"),
    ({"session": {"provider": "cuda"}}, "field 'session.provider' is not one a profile may set"),
    ({"session": {"optimization": ["all"]}},
     "field 'session.optimization' must be one of 'disable', 'basic', 'extended', 'all'"),
    ({"session": {"static_batch": "1"}},
     "field 'session.static_batch' must be an integer from 1 to 4096 or null, received \"1\""),
    ({"session": {"static_batch": 0}},
     "field 'session.static_batch' must be an integer from 1 to 4096 or null, received 0"),
    ({"session": {"static_batch": -1}},
     "field 'session.static_batch' must be an integer from 1 to 4096 or null, received -1"),
    ({"session": {"openvino_precision": 5}},
     "field 'session.openvino_precision' must be one of 'BF16', 'FP32' or null"),
    ({"session": {"threads": 1.5}}, "field 'session.threads' must be an integer from 1 to 4096 or null"),
    ({"session": {"cuda_graph": "yes"}}, "field 'session.cuda_graph' must be true or false"),
    ({"session": []}, "field 'session' must be an object"),
    ({"source_model": 5}, "field 'source_model' must be a string, received 5"),
    ({"batch_size": True}, "field 'batch_size' must be an integer from 1 to 4096, received true"),
    ({"provider": "tpu"}, "field 'provider' must be one of 'cpu', 'cuda', 'tensorrt', 'openvino'"),
    ({"backend": "python"}, "field 'backend' must be one of 'onnxruntime', 'openvino-runtime'"),
    ({"precision": "int4"}, "field 'precision' must be one of"),
    ({"model_sha256": "abc"}, "field 'model_sha256' must be 64 lowercase hex digits"),
    ({"measured": {"p50_ms": "fast"}}, "field 'measured.p50_ms' must be a finite number from 0 or null"),
    ({"measured": {"accuracy": 7}},
     "field 'measured.accuracy' must be a finite number from 0 to 1 or null, received 7"),
    ({"measured": {"notes": {"a": 1}}},
     "field 'measured.notes' must be a string, a finite number, true, false or null"),
    ({"machine": {"cpu": 5, "isa": [], "gpu": None}}, "field 'machine.cpu' must be a string or null, received 5"),
    ({"machine": {"cpu": "x", "isa": "avx2", "gpu": None}}, "field 'machine.isa' must be a list of strings"),
    ({"candidates": [[1]]}, "field 'candidates[0]' must be an object, received list"),
    ({"candidates": {}}, "field 'candidates' must be a list"),
    ({"hooks": ["rm -rf"]}, "field 'hooks' is not a profile field"),
]


@pytest.mark.parametrize(("patch", "message"), BAD_FIELDS,
                         ids=[m.split("'")[1] + "-" + str(i) for i, (_, m) in enumerate(BAD_FIELDS)])
def test_every_field_is_typed_and_bounded(tuned: dict[str, Path], tmp_path: Path, patch: dict[str, Any],
                                          message: str) -> None:
    good = json.loads(tuned["single"].read_text())
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({**good, **patch, "model": str(tuned["model"])}))
    with pytest.raises(ProfileError, match="^" + str(path).replace(".", r"\.")) as info:
        Predictor.from_profile(path)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_the_session_allow_list_is_what_sessionconfig_takes() -> None:
    """Every allowed key is a SessionConfig field; the ones that name paths or switch on side
    effects are not among them."""
    from dataclasses import fields

    assert set(SESSION_FIELDS) <= {f.name for f in fields(SessionConfig)}
    assert not {"profile_dir", "trt_cache_dir", "extra", "provider"} & set(SESSION_FIELDS)


def test_an_injected_profile_dir_writes_nothing(tuned: dict[str, Path], tmp_path: Path, sample_image: Path) -> None:
    """The attack of the issue: `"profile_dir": <folder>` made every predict write onnxruntime traces there."""
    good = json.loads(tuned["single"].read_text())
    traces = tmp_path / "traces"
    traces.mkdir()
    path = tmp_path / "p.json"
    path.write_text(json.dumps({**good, "model": str(tuned["model"]),
                                "session": {**good["session"], "profile_dir": str(traces)}}))
    proc = _cli("predict", "--profile", path, sample_image)
    lines = proc.stderr.strip().splitlines()
    assert (proc.returncode == 1 and len(lines) == 1
            and "'session.profile_dir' is not one a profile may set" in lines[0]), proc.stderr
    assert list(traces.iterdir()) == []


def test_a_profile_we_cannot_read_back_is_never_written(tuned: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="'session.profile_dir'"):  # the JSON's object: checked as it is read
        _profile(tuned["model"], profile_dir=str(tmp_path))
    typed = dataclasses.replace(_profile(tuned["model"]),
                                session=SessionConfig(provider="cpu", profile_dir=str(tmp_path)))
    with pytest.raises(ProfileError, match="'session.profile_dir'"):  # a SessionConfig: checked as it is written
        save_profile(typed, tmp_path / "p.json")
    assert not (tmp_path / "p.json").exists()


def test_the_session_is_the_config_a_predictor_opens(tuned: dict[str, Path], tmp_path: Path) -> None:
    """A profile's session is a frozen SessionConfig for its provider; the file records only the
    fields that differ from the defaults, and reads back equal."""
    profile = _profile(tuned["model"], streams=2, static_batch=4)
    assert profile.session == SessionConfig(provider="cpu", threads=1, streams=2, static_batch=4)
    with pytest.raises(dataclasses.FrozenInstanceError):
        profile.session.threads = 8  # type: ignore[misc]
    with pytest.raises(ValueError, match="provider"):
        dataclasses.replace(profile, session=SessionConfig(provider="cuda"))
    save_profile(profile, tmp_path / "p.json")
    assert json.loads((tmp_path / "p.json").read_text())["session"] == {"threads": 1, "static_batch": 4, "streams": 2}
    assert load_profile(tmp_path / "p.json", check_model=False).session == profile.session


@pytest.mark.parametrize("where", ["session", "candidates"])
def test_deeply_nested_json_is_refused_not_a_recursion_error(tuned: dict[str, Path], tmp_path: Path,
                                                             where: str) -> None:
    text = tuned["single"].read_text()
    deep = "[" * 100_000 + "]" * 100_000
    path = tmp_path / "deep.json"
    path.write_text(text.replace('"candidates": [', f'"{where}": {deep}, "candidates": [', 1) if where == "session"
                    else text.replace('"candidates": [', f'"candidates": [{deep}, ', 1))
    with pytest.raises(ProfileError, match="nests more than 4 levels deep"):
        load_profile(path)
    # deep enough to parse, still refused
    path.write_text(text.replace('"candidates": [', '"candidates": [[[[[1]]]], ', 1))
    with pytest.raises(ProfileError, match="nests more than 4 levels deep"):
        load_profile(path)


def test_a_huge_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "huge.json"
    with open(path, "wb") as fh:
        fh.truncate(64 << 20)  # sparse: 64 MB that cost no disk
    with pytest.raises(ProfileError, match="larger than 1024 KB"):
        load_profile(path)


# -- the model run is the model tuned -----------------------------------------------------------

def test_a_change_to_external_data_is_caught(tuned: dict[str, Path]) -> None:
    """Weights in `model.onnx.data` changed after tune: the profile is refused (it used to run them)."""
    original = tuned["data"].read_bytes()
    changed = bytearray(original)
    changed[len(changed) // 2] ^= 0x40
    try:
        tuned["data"].write_bytes(bytes(changed))
        with pytest.raises(ProfileError, match=r"model\.onnx \(or its external data\) changed since it was tuned"):
            Predictor.from_profile(tuned["external"])
        proc = _cli("predict", "--profile", tuned["external"], Path(__file__))
        assert proc.returncode == 1 and "changed since it was tuned" in proc.stderr and "Traceback" not in proc.stderr
    finally:
        tuned["data"].write_bytes(original)
    load_profile(tuned["external"])


def test_the_bytes_hashed_are_the_bytes_run(tuned: dict[str, Path], tmp_path: Path) -> None:
    """An impostor swapped in between the hash and the load must never run: with one read, each
    Predictor either runs the tuned model or is refused. A thread swaps the model file for an
    impostor and back (atomic renames, as an attacker would) while profiles are loaded; reading
    the file twice (hash, then load) let 14 of 300 runs execute the impostor."""
    import os
    import threading

    folder = tmp_path / "race"
    folder.mkdir()
    model = folder / "model.onnx"
    original = tuned["model"].read_bytes()
    model.write_bytes(original)
    save_profile(_profile(model), folder / "p.json")
    impostor = onnx.load(str(model))
    fc = next(t for t in impostor.graph.initializer if t.name == "fc.bias")
    fc.CopyFrom(onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(fc) + 100, fc.name))
    versions = [original, impostor.SerializeToString()]
    x = _x()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with Predictor(model, provider="cpu") as p:
            reference = p.run(x)
        stop = threading.Event()

        def swap() -> None:
            i = 0
            while not stop.is_set():
                i += 1
                staged = folder / f".swap{i % 2}"
                staged.write_bytes(versions[i % 2])
                os.replace(staged, model)

        swapper = threading.Thread(target=swap)
        swapper.start()
        ran, refused = 0, 0
        try:
            for _ in range(150):
                try:
                    with Predictor.from_profile(folder / "p.json") as p:
                        out = p.run(x)
                except ProfileError:
                    refused += 1
                    continue
                ran += 1
                np.testing.assert_array_equal(out, reference)  # never the impostor's logits
        finally:
            stop.set()
            swapper.join()
    print(f"ran the tuned model {ran} times, refused the impostor {refused} times")
    assert ran and refused


def test_a_measurement_without_a_finite_value_is_written_as_null(tuned: dict[str, Path], tmp_path: Path) -> None:
    """A candidate that computed NaN has no error to record: null, as in every JSON we write (it
    used to stop tune at the very end with a bare ValueError of json.dumps)."""
    import dataclasses

    profile = dataclasses.replace(_profile(tuned["model"]),
                                  candidates=[{"engine": "ov-int8", "max_rel_error": float("nan")}])
    save_profile(profile, tmp_path / "p.json")
    assert json.loads((tmp_path / "p.json").read_text())["candidates"] == [{"engine": "ov-int8", "max_rel_error": None}]
