"""bench --profile: the in-process engine is the profile's file in the profile's configuration
(issue 26 D.2: the load test's baseline is what serve --profile serves). A real tune profile."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from resnet_deploy.tune import TuneOptions, tune

from .._cli_cases import run_cli


@pytest.fixture(scope="module")
def profile(resnet20_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("profiled")
    shutil.copyfile(resnet20_onnx, folder / "r20.onnx")
    path = folder / "r20.profile.json"
    tune(TuneOptions(model=folder / "r20.onnx", output=path, providers=["cpu"], precisions=["fp32"], duration=0.2,
                     rounds=1, threads=1))
    return path


def test_bench_profile_measures_the_profiles_engine(profile: Path, tmp_path: Path) -> None:
    out = tmp_path / "b.json"
    result = run_cli("bench", "--profile", profile, "--iterations", "3", "--rounds", "1", "--warmup", "0",
                     "--json", out)
    assert result.returncode == 0, result.stderr
    payload = json.loads(out.read_text())
    rows = {r["engine"]: r for r in payload["results"]}
    assert "r20-profile" in rows and rows["r20-profile"]["provider"] == "cpu" and not rows["r20-profile"]["error"], rows
    assert payload["environment"]["threads"] == 1  # the profile's threads, not the machine's cores
    assert payload["options"]["files"] == [str(profile.parent / "r20.onnx")]


# (arguments besides --profile, what the one error line says)
REFUSED = [
    (["{model}"], "give it or ONNX files, not both"),
    (["--depth", "18"], "not both"),
]


@pytest.mark.parametrize(("extra", "needle"), REFUSED, ids=["with-a-file", "with-the-zoo"])
def test_bench_profile_refusals_are_one_line(profile: Path, extra: list[str], needle: str) -> None:
    args = [str(profile.parent / "r20.onnx") if a == "{model}" else a for a in extra]
    result = run_cli("bench", "--profile", profile, *args, "--iterations", "3")
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 1 and len(errors) == 1 and needle in errors[0], result.stderr
