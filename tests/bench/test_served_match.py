"""bench --url says when its in-process baseline is not what the server serves (issue 26 D.2).

The entries ``triton``/``serve`` write (real files, real profiles from a real tune run) state what
they serve in their config's parameters; :func:`mismatches` reads those parameters as the server
returns them. Against Triton's real server: ``tests/serving/triton/test_triton_server.py``.
"""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import pytest

from resnet_deploy.bench.served_match import in_process, mismatches
from resnet_deploy.serving.triton import TritonOptions, write_triton_repository
from resnet_deploy.serving.triton.client import load_test_command
from resnet_deploy.tune import TuneOptions, tune


@pytest.fixture(scope="module")
def files(resnet20_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The fp32 file, another file (its weights changed), and a profile of the fp32 file."""
    import onnx

    folder = tmp_path_factory.mktemp("served-match")
    fp32 = folder / "r20.onnx"
    shutil.copyfile(resnet20_onnx, fp32)
    other = onnx.load(str(fp32))
    other.graph.initializer[0].raw_data = bytes(len(other.graph.initializer[0].raw_data))
    onnx.save(other, str(folder / "other.onnx"))
    tune(TuneOptions(model=fp32, output=folder / "r20.profile.json", providers=["cpu"],
                     precisions=["fp32"], duration=0.2, rounds=1))
    return {"fp32": fp32, "other": folder / "other.onnx", "profile": folder / "r20.profile.json"}


def _served(files: dict[str, Path], tmp_path: Path, served: str, provider: str = "cpu") -> dict[str, str]:
    """The parameters of the Python-backend entry ``triton`` writes for ``served`` (a file or the profile)."""
    options = TritonOptions(backend="python", provider=provider, name="m",
                            profile=files["profile"] if served == "profile" else None)
    write_triton_repository(files["fp32" if served == "profile" else served], tmp_path / "repo", options)
    text = (tmp_path / "repo" / "m" / "config.pbtxt").read_text()
    return dict(re.findall(r'key: "(\w+)"\s*value \{\s*string_value: "([^"]*)"', text))


# (what the server serves, what bench runs in process, the words of each note; [] for none)
ROWS = [
    ("fp32", ("fp32", None, ["cpu"]), []),
    ("other", ("fp32", None, ["cpu"]), ["serves another model file than r20.onnx"]),
    ("profile", ("fp32", None, ["cpu"]), ["serves a profile's configuration (ort-fp32)", "(--profile)"]),
    ("profile", ("fp32", "profile", ["cpu"]), []),
    ("fp32", ("fp32", "profile", ["cpu"]), ["serves the file as it is on cpu", "instead of --profile"]),
    ("fp32", ("fp32", None, ["openvino"]), ["runs the model on cpu, the in-process engines on openvino"]),
]


@pytest.mark.parametrize(("served", "local", "words"), ROWS,
                         ids=["same-file", "other-file", "profile-vs-file", "same-profile",
                              "file-vs-profile", "other-provider"])
def test_a_baseline_that_is_not_what_is_served_is_said(files: dict[str, Path], tmp_path: Path, served: str,
                                                       local: tuple[str, str | None, list[str]],
                                                       words: list[str]) -> None:
    file, profile, providers = local
    notes = mismatches(_served(files, tmp_path, served),
                       in_process(files[file], files[profile] if profile else None, providers), "grpc://h:1")
    assert len(notes) == (1 if words else 0), notes
    for word in words:
        assert word in notes[0], notes[0]


def test_an_entry_that_states_nothing_gets_no_note(files: dict[str, Path]) -> None:
    """Another server's entry (or Triton's onnxruntime backend) has none of our parameters."""
    assert mismatches({}, in_process(files["fp32"], None, ["cpu"]), "grpc://h:1") == []


@pytest.mark.parametrize("profile", [False, True], ids=["file", "profile"])
def test_serves_load_test_command_measures_what_it_serves(tmp_path: Path, profile: bool) -> None:
    path = tmp_path / "my models" / ("m.profile.json" if profile else "m.onnx")
    words = shlex.split(load_test_command("m", "127.0.0.1:8001", model=None if profile else path,
                                          profile=path if profile else None))
    target = ["--profile", str(path)] if profile else [str(path)]
    assert words == ["resnet-deploy", "bench", *target, "--url", "grpc://127.0.0.1:8001", "--model", "m",
                     "--mode", "throughput"]
