"""examples/node: the image-input model in Node.js (onnxruntime-node, jpeg-js, pngjs) against
``resnet-deploy predict --json`` and ``Predictor`` on the same photo files.

PNG decodes to the same pixels in pngjs as in PIL, so the logits must agree to float rounding.
jpeg-js is not libjpeg: it reconstructs chroma and the inverse DCT its own way (measured on these
photos at quality 90: 1 grey level on average, up to 38), so JPEG logits are held to a looser,
stated bound, with the same top-1 and a top-5 overlap of at least 4.

Skipped when ``examples/node/node_modules`` is absent (``npm ci`` there installs it; CI does, and
sets ``RESNET_DEPLOY_REQUIRE_NODE=1`` so that a missing install fails instead of skipping).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import onnx
import pytest

from PIL import Image
from typer.testing import CliRunner

from resnet_deploy import Predictor
from resnet_deploy.image_input import ImageInputSpec, preprocessing_for
from resnet_deploy.export.image_input import image_input_stage, photo_variants
from resnet_deploy.graph.io import load_onnx, save_onnx, write_metadata
from resnet_deploy.preprocess.images import load_image
from resnet_deploy_cli.main import app

from ._require import skip_unless_present

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "node"
PNG_RTOL = 1e-5  # the same pixels, onnxruntime-node 1.30 against the Python package
JPEG_RTOL = 2e-2  # another decoder: measured up to 6.2e-3 on these photos (ResNet-18 and -20, random init)
CIFAR = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

pytestmark = pytest.mark.filterwarnings("ignore:.*seeded random initialisation")


def _node_ready() -> str | None:
    if shutil.which("node") is None:
        return "node is not installed"
    if not (EXAMPLE / "node_modules" / "onnxruntime-node").is_dir():
        return "examples/node/node_modules is absent: run `npm ci --ignore-scripts` in examples/node"
    return None


@pytest.fixture(scope="module", autouse=True)
def _need_node() -> None:
    skip_unless_present(_node_ready(), "RESNET_DEPLOY_REQUIRE_NODE")


@pytest.fixture(scope="module")
def labelled_r20(resnet20_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ResNet-20 with CIFAR's class names in its metadata, taking images."""
    model = load_onnx(resnet20_onnx)
    write_metadata(model, {"labels": CIFAR})
    with_input, _ = image_input_stage(model, ImageInputSpec(preprocessing_for(model)))
    path = tmp_path_factory.mktemp("node") / "r20_labelled_image.onnx"
    save_onnx(with_input, path)
    return path


@pytest.fixture(scope="module")
def r18_image(resnet18_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    model = load_onnx(resnet18_onnx)
    with_input, _ = image_input_stage(model, ImageInputSpec(preprocessing_for(model)))
    path = tmp_path_factory.mktemp("node") / "r18_image.onnx"
    save_onnx(with_input, path)
    return path


@pytest.fixture(scope="module")
def photo_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Every photo as PNG and as JPEG (quality 90), plus grayscale (L), RGBA, palette and 16-bit
    grayscale PNGs, and a JPEG stored sideways with an EXIF orientation tag."""
    folder = tmp_path_factory.mktemp("node_photos")
    files = []
    variants = photo_variants()
    for i, (_, photo) in enumerate(variants):
        for suffix in (".png", ".jpg"):
            path = folder / f"{i:02d}{suffix}"
            photo.save(path, quality=90) if suffix == ".jpg" else photo.save(path)
            files.append(path)
    portrait = variants[0][1]
    extra = {"gray_L.png": portrait.convert("L"), "rgba.png": portrait.convert("RGBA"),
             "palette.png": portrait.convert("P", palette=Image.Palette.ADAPTIVE),
             "gray16.png": Image.fromarray((np.asarray(portrait.convert("L"), np.uint16) * 257 + 3).astype(np.uint16))}
    for name, image in extra.items():
        image.save(folder / name)
        files.append(folder / name)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to view
    portrait.transpose(Image.Transpose.ROTATE_90).save(folder / "exif6.jpg", exif=exif, quality=90)
    files.append(folder / "exif6.jpg")
    return files


def _node(*args: str | Path, code: int = 0) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["node", str(EXAMPLE / "classify.js"), *map(str, args)], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == code, result.stderr
    return result


def _predict_json(model: Path, files: list[Path]) -> list[dict]:
    result = CliRunner().invoke(app, ["predict", str(model), *map(str, files), "--json", "-p", "cpu", "-k", "5"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.parametrize("fixture", ["labelled_r20", "r18_image"])
def test_node_equals_predict(fixture: str, photo_files: list[Path], request: pytest.FixtureRequest) -> None:
    model: Path = request.getfixturevalue(fixture)
    node = json.loads(_node(model, *photo_files, "--json", "--top-k", "5").stdout)
    python = _predict_json(model, photo_files)
    worst = {".png": 0.0, ".jpg": 0.0}
    with Predictor(model, provider="cpu") as predictor:
        for n, p, path in zip(node, python, photo_files):
            assert n["image"] == str(path) == p["image"]
            upright = load_image(path)
            assert n["size"] == [upright.width, upright.height], path  # EXIF applied as PIL applies it
            logits = predictor.run(np.asarray(upright)[None])[0].astype(np.float64)
            rel = float(np.max(np.abs(np.asarray(n["logits"]) - logits)) / np.max(np.abs(logits)))
            worst[path.suffix] = max(worst[path.suffix], rel)
            node_top, python_top = [x["index"] for x in n["top_k"]], [x["index"] for x in p["top_k"]]
            assert node_top[0] == python_top[0], path
            if path.suffix == ".png":
                assert rel <= PNG_RTOL and node_top == python_top, (path, rel)
                np.testing.assert_allclose([x["score"] for x in n["top_k"]], [x["score"] for x in p["top_k"]],
                                           rtol=1e-4)
                assert [x["label"] for x in n["top_k"]] == [x["label"] for x in p["top_k"]]
            else:
                assert rel <= JPEG_RTOL and len(set(node_top) & set(python_top)) >= 4, (path, rel)
    print(f"{fixture}: {len(photo_files)} files, Node vs Python logits max rel error: "
          f"PNG {worst['.png']:.1e} (bound {PNG_RTOL:.0e}), JPEG {worst['.jpg']:.1e} (bound {JPEG_RTOL:.0e})")
    if fixture == "labelled_r20":
        assert {x["label"] for r in node for x in r["top_k"]} <= set(CIFAR)


def test_node_refuses_in_one_line(resnet20_onnx: Path, labelled_r20: Path, tmp_path: Path) -> None:
    float_model = _node(resnet20_onnx, photo_files_dummy(tmp_path), code=1)
    assert float_model.stderr.startswith("error:") and "export it with --image-input" in float_model.stderr
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    for args, needle in [((labelled_r20, text), "not a JPEG or PNG"),
                         ((labelled_r20, "--top-k", "0", text), "--top-k")]:
        result = _node(*args, code=1)
        assert needle in result.stderr and _errors(result.stderr) == 1, result.stderr


def _errors(stderr: str) -> int:
    """How many error lines: each failure is one ``error:`` line, after any ``warning:`` lines."""
    lines = stderr.strip().splitlines()
    assert all(line.startswith(("error:", "warning:")) for line in lines), stderr
    return sum(line.startswith("error:") for line in lines)


def test_node_help_and_random_weights_warning(labelled_r20: Path, tmp_path: Path) -> None:
    """Issue 26 D.4: --help was 'unknown option --help'; a model of random weights said nothing
    where predict and the page warn."""
    shown = _node("--help")
    assert shown.stdout.startswith("usage: node classify.js MODEL.onnx IMAGE") and "--top-k" in shown.stdout
    assert not shown.stderr
    for weights, warned in (("random init (seed 0)", True), ("resnet20.pth", False)):
        model = _with_metadata(labelled_r20, tmp_path, f"w{int(warned)}", weights=weights)
        result = _node(model, photo_files_dummy(tmp_path))
        assert ("warning: w1.onnx holds the seeded random initialisation" in result.stderr) is warned, result.stderr


def photo_files_dummy(folder: Path) -> Path:
    path = folder / "small.png"
    Image.new("RGB", (40, 30), (120, 80, 40)).save(path)
    return path


# -- issue 26 A.4: the model's metadata is data; its text reaches the terminal escaped ----------------

# What a terminal would act on: every C0/C1 control but the newlines that end our lines, DEL, and
# the invisible direction and line controls.
RAW = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")
HOSTILE = ["\x1b]0;TITLE\x07\x1b[2K\x1b[1;31m", "safe\rspoofed", "gnp.exe\u202e", "csi\x9b2J", *CIFAR[4:]]


def _with_metadata(source: Path, folder: Path, name: str, **changes: str | None) -> Path:
    """``source`` with metadata keys set (a string) or removed (None)."""
    model = onnx.load(str(source))
    kept = [(p.key, p.value) for p in model.metadata_props if p.key not in changes]
    del model.metadata_props[:]
    for key, value in [*kept, *((k, v) for k, v in changes.items() if v is not None)]:
        model.metadata_props.add(key=key, value=value)
    path = folder / f"{name}.onnx"
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("row, changes, code, expect", [
    # A key "__proto__" is a key like any other: it gave the metadata a prototype whose labels showed.
    ("proto", {"labels": None, "__proto__": json.dumps({"labels": [f"PROTO{i}" for i in range(10)]})}, 0,
     ["1. ", "(", "  "]),
    ("proto-in-labels-json", {"labels": json.dumps({"__proto__": CIFAR, "length": 10})}, 1,
     ["'labels' must be a non-empty list of names"]),
    ("too-few-labels", {"labels": json.dumps(["a", "b", "c"])}, 1, ["'labels' has 3 names for 10 classes"]),
    ("too-many-labels", {"labels": json.dumps(CIFAR + ["extra"])}, 1, ["'labels' has 11 names for 10 classes"]),
    ("labels-not-strings", {"labels": json.dumps(list(range(10)))}, 1, ["'labels' must be a non-empty list of names"]),
    ("control-characters", {"labels": json.dumps(HOSTILE)}, 0,
     ["\\x1b]0;TITLE\\x07\\x1b[2K\\x1b[1;31m", "safe\\rspoofed", "gnp.exe\\u202e", "csi\\x9b2J"]),
])
def test_node_metadata_is_plain_data(labelled_r20: Path, tmp_path: Path, row: str, changes: dict[str, str | None],
                                     code: int, expect: list[str]) -> None:
    model = _with_metadata(labelled_r20, tmp_path, row, **changes)
    result = _node(model, photo_files_dummy(tmp_path), "--top-k", "10", code=code)
    print(result.stdout, result.stderr)
    assert not RAW.search(result.stdout + result.stderr), RAW.findall(result.stdout + result.stderr)
    text = result.stdout if code == 0 else result.stderr
    for needle in expect:
        assert needle in text, needle
    if code:
        assert _errors(result.stderr) == 1
    if row == "proto":
        assert "PROTO" not in result.stdout  # no labels: the class indices stand in
    if row == "control-characters":  # --json keeps the labels exactly, escaped by JSON itself
        as_json = _node(model, photo_files_dummy(tmp_path), "--top-k", "10", "--json")
        assert {p["label"] for p in json.loads(as_json.stdout)[0]["top_k"]} == set(HOSTILE)


def _png_bomb(path: Path, width: int, height: int) -> Path:
    """A 1-bit PNG of zeros: 17 KB on disk for 12000x12000 pixels, 576 MB once decoded to RGBA."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = (b"\x00" * (1 + (width + 7) // 8)) * height
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b""))
    return path


def test_node_refuses_a_png_bomb_from_its_header(labelled_r20: Path, tmp_path: Path) -> None:
    """Issue 26 B.3: the size check ran after pngjs decoded the pixels (here 35 s and 1.1 GB before
    the refusal); the PNG header states the size, read first as the JPEG path does."""
    import time

    bomb = _png_bomb(tmp_path / "bomb.png", 12000, 12000)
    start = time.monotonic()
    result = _node(labelled_r20, bomb, code=1)
    took = time.monotonic() - start
    print(result.stderr, f"{took:.1f} s")
    assert "more than 89478485 pixels" in result.stderr and _errors(result.stderr) == 1
    assert took < 10
