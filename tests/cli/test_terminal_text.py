"""Text from a file never reaches the terminal raw (issue 26 A.4): a model's labels and metadata
with control characters are shown as the escapes that name them, by predict and info alike."""

from __future__ import annotations

import json
import re
from pathlib import Path

import onnx
import pytest
from PIL import Image

from .._cli_cases import run_cli

# Each row: a hostile label, and what the terminal must show in its place.
LABELS = [
    ("\x1b]0;TITLE\x07\x1b[2K\x1b[1;31m", "\\x1b]0;TITLE\\x07\\x1b[2K\\x1b[1;31m"),  # retitle, erase the line, red
    ("safe\rspoofed", "safe\\rspoofed"),           # a carriage return overwrites what came before
    ("gnp.exe\u202e", "gnp.exe\\u202e"),           # right-to-left override: the rest reads backwards
    ("csi\x9b2J", "csi\\x9b2J"),                   # the one-byte CSI of C1: clear the screen
    ("bell\x07tab\t", "bell\\x07tab\\t"),
    ("[bold]markup[/bold]", "[bold]markup[/bold]"),  # rich markup shown as text
]
# What a terminal would act on: every C0/C1 control but the newlines that end our lines, DEL,
# and the invisible direction and line controls.
RAW = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")


@pytest.fixture(scope="module")
def hostile(resnet20_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    model = onnx.load(str(resnet20_onnx))
    labels = [text for text, _ in LABELS] + [f"class{i}" for i in range(10 - len(LABELS))]
    props = {p.key: p for p in model.metadata_props}
    if "labels" in props:
        props["labels"].value = json.dumps(labels)
    else:
        model.metadata_props.add(key="labels", value=json.dumps(labels))
    model.metadata_props.add(key="note\x1b[8m", value="hidden\x1b[8m text")
    folder = tmp_path_factory.mktemp("hostile")
    onnx.save(model, str(folder / "hostile.onnx"))
    Image.new("RGB", (40, 36), (200, 120, 30)).save(folder / "image.png")
    return folder / "hostile.onnx", folder / "image.png"


@pytest.mark.parametrize("command", ["predict", "info"])
def test_control_characters_from_a_model_are_escaped(hostile: tuple[Path, Path], command: str) -> None:
    model, image = hostile
    args = ["predict", model, image, "-k", "10", "-p", "cpu"] if command == "predict" else ["info", model]
    result = run_cli(*args, env={"COLUMNS": "400"})
    assert result.returncode == 0, result.stderr
    print(result.output)
    assert not RAW.search(result.output), RAW.findall(result.output)
    shown = LABELS if command == "predict" else LABELS[:3]  # info shows the first three labels
    for _, escaped in shown:
        assert escaped in result.stdout, escaped
    if command == "info":
        assert "note\\x1b[8m" in result.stdout and "hidden\\x1b[8m text" in result.stdout


def test_json_keeps_the_labels_as_they_are(hostile: tuple[Path, Path]) -> None:
    """--json is data for programs: the labels exactly, escaped by JSON itself."""
    model, image = hostile
    result = run_cli("predict", model, image, "-k", "10", "-p", "cpu", "--json")
    assert result.returncode == 0 and not RAW.search(result.stdout)
    got = {p["label"] for p in json.loads(result.stdout)[0]["top_k"]}
    assert {text for text, _ in LABELS} <= got
