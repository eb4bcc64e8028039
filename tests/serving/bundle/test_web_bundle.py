"""examples/web: ``resnet-deploy bundle --web`` and its page in headless Chromium against ``Predictor``.

A real ResNet-18 export with the image input, bundled by the CLI, served from 127.0.0.1 with the
COOP/COEP headers (so the page is cross-origin isolated and runs WebAssembly threads), opened in
the system's Chromium; the page classifies the photos and posts its top-5, logits and times back to
the server (``--virtual-time-budget`` would freeze ``performance.now()``).

PNG: Chromium decodes the same pixels as PIL, so only the kernels differ (WebAssembly SIMD against
onnxruntime's native x86 ones): logits within :data:`PNG_RTOL`. JPEG: Chromium's decoder against
Pillow's, held to the looser :data:`JPEG_RTOL` (another libjpeg may reconstruct chroma its own way;
here both are libjpeg-turbo and agree to 3e-7). The top-5 must equal Predictor's on every photo.

Skipped when Chromium or examples/web/node_modules is absent, unless ``RESNET_DEPLOY_REQUIRE_WEB=1``
(CI installs both and sets it, so that a missing install fails instead of skipping).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np
import onnxruntime as ort
import pytest

from PIL import Image
from typer.testing import CliRunner

import resnet_deploy as rd
from resnet_deploy import Predictor
from resnet_deploy.serving.bundle import ORT_WEB_FILES, ORT_WEB_VERSION, WEB_EXAMPLE
from resnet_deploy.image_input import ImageInputSpec, preprocessing_for
from resnet_deploy.export.image_input import image_input_stage, photo_variants
from resnet_deploy.graph.io import load_onnx, save_onnx, write_metadata
from resnet_deploy.preprocess.images import load_image
from resnet_deploy.preprocess.labels import imagenet_labels
from resnet_deploy_cli.main import app

from ..._require import skip_unless_present
from ...webpage.chromium import chromium_path, run_page
from ...webpage.server import BundleServer

runner = CliRunner()
# Measured on these photos (random-init ResNet-18, onnxruntime-web 1.30 in Chromium 156 against
# onnxruntime 1.32 on x86): PNG 3.2e-7, JPEG 2.9e-7 (Chromium and Pillow both decode with libjpeg-turbo here).
PNG_RTOL = 1e-4
JPEG_RTOL = 2e-2  # as examples/node's: another JPEG decoder may reconstruct chroma its own way
INT8_RTOL = 5e-2  # WebAssembly's integer kernels against x86's (VNNI): one rounding step moves an activation

pytestmark = pytest.mark.filterwarnings("ignore:.*seeded random initialisation")


def _web_ready() -> str | None:
    if chromium_path() is None:
        return "Chromium is not installed: apt-get install chromium"
    if not (WEB_EXAMPLE / "node_modules" / "onnxruntime-web" / "dist").is_dir():
        return "examples/web/node_modules is absent: run `npm ci` in examples/web"
    return None


@pytest.fixture(scope="module")
def _need_web() -> None:
    skip_unless_present(_web_ready(), "RESNET_DEPLOY_REQUIRE_WEB")


@pytest.fixture(scope="module")
def r18_image(resnet18_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    model = load_onnx(resnet18_onnx)
    with_input, _ = image_input_stage(model, ImageInputSpec(preprocessing_for(model)))
    path = tmp_path_factory.mktemp("web") / "r18_image.onnx"
    save_onnx(with_input, path)
    return path


def _photos(folder: Path) -> list[str]:
    """Every photo as PNG, four as JPEG (quality 90), a grayscale PNG and a JPEG stored sideways
    with an EXIF orientation tag; names relative to the bundle."""
    folder.mkdir()
    names = []
    variants = photo_variants()
    for i, (_, photo) in enumerate(variants):
        photo.save(folder / f"{i:02d}.png")
        names.append(f"{folder.name}/{i:02d}.png")
        if i in (0, 3, 5, 10):
            photo.save(folder / f"{i:02d}.jpg", quality=90)
            names.append(f"{folder.name}/{i:02d}.jpg")
    variants[0][1].convert("L").save(folder / "gray_L.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to view
    variants[6][1].transpose(Image.Transpose.ROTATE_90).save(folder / "exif6.jpg", exif=exif, quality=90)
    return [*names, f"{folder.name}/gray_L.png", f"{folder.name}/exif6.jpg"]


def _bundle(model: Path, out: Path, *extra: str) -> Path:
    result = runner.invoke(app, ["bundle", str(model), "--web", "-o", str(out), *extra])
    assert result.exit_code == 0, result.output
    return out


def _check_page(report: dict, bundle: Path, names: list[str], native: Callable[[np.ndarray], np.ndarray], *,
                rtol_png: float, rtol_jpeg: float, exact_top5: bool) -> dict[str, float]:
    """The page's answers against ``native``'s logits on the same files (decoded by PIL, as
    Predictor decodes them); the worst logit error per kind of file."""
    assert report["ok"], report.get("error")
    env = report["environment"]
    assert env["cross_origin_isolated"] is True and env["threads"] >= 1, env
    assert [r["image"] for r in report["results"]] == names
    worst = {".png": 0.0, ".jpg": 0.0}
    for r in report["results"]:
        path = bundle / r["image"]
        upright = load_image(path)
        assert r["size"] == [upright.width, upright.height], path  # EXIF applied as PIL applies it
        logits = native(np.asarray(upright.convert("RGB"))[None])[0].astype(np.float64)
        expected = [int(i) for i in np.argsort(-logits, kind="stable")[:5]]
        rel = float(np.max(np.abs(np.asarray(r["logits"]) - logits)) / np.max(np.abs(logits)))
        worst[path.suffix] = max(worst[path.suffix], rel)
        top = [p["index"] for p in r["top_k"]]
        assert top[0] == expected[0], (path, top, expected)
        assert rel <= (rtol_png if path.suffix == ".png" else rtol_jpeg), (path, rel)
        if exact_top5:
            assert top == expected, (path, top, expected)
        else:
            assert len(set(top) & set(expected)) >= 4, (path, top, expected)
        assert [p["label"] for p in r["top_k"]] == [imagenet_labels()[i] for i in top]
        assert r["run_ms"] > 0 and r["decode_ms"] >= 0  # real clocks: not a frozen virtual time
    return worst


def test_page_equals_predictor(_need_web: None, r18_image: Path, tmp_path: Path) -> None:
    bundle = _bundle(r18_image, tmp_path / "site")
    names = _photos(bundle / "photos")
    with BundleServer(bundle) as server:
        report = run_page(server, "images=" + ",".join(names), timeout=240, screenshot=tmp_path / "page.png")
        failed = [r for r in server.requests if r[2] >= 400]
    assert not failed, failed  # every file the page and onnxruntime-web asked for was in the bundle
    with Image.open(tmp_path / "page.png") as shot:  # taken over the DevTools pipe once the page had posted
        assert shot.size == (900, 640)
    assert report["environment"]["threads"] == report["environment"]["hardware_concurrency"]  # every core
    with Predictor(r18_image, provider="cpu") as predictor:
        worst = _check_page(report, bundle, names, predictor.run, rtol_png=PNG_RTOL, rtol_jpeg=JPEG_RTOL,
                            exact_top5=True)
        top5 = [[p.index for p in found] for found in predictor.predict([bundle / n for n in names], top_k=5)]
    assert [[p["index"] for p in r["top_k"]] for r in report["results"]] == top5  # Predictor's top-5, from the files
    print(f"web page vs Predictor, {len(names)} photos, {report['environment']['threads']} threads: "
          f"logits max rel error PNG {worst['.png']:.1e} (bound {PNG_RTOL:.0e}), JPEG {worst['.jpg']:.1e} "
          f"(bound {JPEG_RTOL:.0e}); first image {report['results'][0]['run_ms']:.0f} ms")


def test_int8_ort_format_page(_need_web: None, r18_image: Path, tmp_path: Path) -> None:
    """INT8 and the ORT format written by Python's onnxruntime load in onnxruntime-web and answer
    as the same file does natively (a second, short page load: three photos)."""
    calib = tmp_path / "calib"
    calib.mkdir()
    for i, (_, photo) in enumerate(photo_variants()):
        photo.save(calib / f"{i}.png")
    bundle = _bundle(r18_image, tmp_path / "site8", "--int8", "-c", str(calib), "--ort-format", "--threads", "1")
    config = json.loads((bundle / "model.json").read_text())
    assert config["model"] == "model.ort" and config["precision"] == "int8" and config["threads"] == 1
    assert not (bundle / "model.onnx").exists()
    names = _photos(bundle / "photos")[:3]
    with BundleServer(bundle) as server:
        report = run_page(server, "images=" + ",".join(names), timeout=240)
    assert report["environment"]["threads"] == 1
    # Predictor reads ONNX only
    native = ort.InferenceSession(str(bundle / "model.ort"), providers=["CPUExecutionProvider"])
    worst = _check_page(report, bundle, names, lambda x: native.run([config["output"]], {"image": x})[0],
                        rtol_png=INT8_RTOL, rtol_jpeg=INT8_RTOL, exact_top5=False)
    print(f"INT8 ORT-format page vs native onnxruntime on the same file: logits max rel error PNG {worst['.png']:.1e}, "
          f"JPEG {worst['.jpg']:.1e} (bound {INT8_RTOL:.0e})")


# -- the command, without a browser -----------------------------------------------------------
def test_bundle_writes_a_complete_folder(r18_image: Path, tmp_path: Path) -> None:
    if not (WEB_EXAMPLE / "node_modules" / "onnxruntime-web").is_dir():
        pytest.skip("examples/web/node_modules is absent")
    out = _bundle(r18_image, tmp_path / "site")
    config = json.loads((out / "model.json").read_text())
    assert config["model"] == "model.onnx" and config["format"] == "onnx" and config["input"] == "image"
    assert config["labels"] == imagenet_labels() and config["resize_size"] == 256 and config["crop_size"] == 224
    assert (out / "model.onnx").read_bytes() == r18_image.read_bytes()
    assert sorted(p.name for p in (out / "ort").iterdir()) == sorted(ORT_WEB_FILES)
    assert {"index.html", "app.js", "serve.py"} <= {p.name for p in out.iterdir()}
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    assert session.get_outputs()[0].name == config["output"]
    again = runner.invoke(app, ["bundle", str(r18_image), "--web", "-o", str(out)])
    assert again.exit_code == 1 and "already exists; pass --force" in again.output
    (out / "stale.txt").write_text("from the old bundle")
    _bundle(r18_image, out, "--force", "--threads", "2")
    assert not (out / "stale.txt").exists() and json.loads((out / "model.json").read_text())["threads"] == 2
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left behind


def _with_labels(model: Path, labels: dict[int, str], out: Path) -> Path:
    """``model`` with the labels of some classes replaced."""
    proto = load_onnx(model)
    write_metadata(proto, {"labels": [labels.get(i, label) for i, label in enumerate(imagenet_labels())]})
    save_onnx(proto, out)
    return out


HUGE_LABEL = "W" * 2_000_000  # one word of 2 MB: the adversarial pass's label, which broke the page's layout


def test_bundle_cuts_labels_too_long_to_show(r18_image: Path, tmp_path: Path) -> None:
    """model.json holds each label at most 200 characters, the cut ones ending in an ellipsis, and
    a note says how many were cut."""
    if not (WEB_EXAMPLE / "node_modules" / "onnxruntime-web").is_dir():
        pytest.skip("examples/web/node_modules is absent")
    # 2 MB, one character over the bound, and exactly at it
    model = _with_labels(r18_image, {7: HUGE_LABEL, 8: "y" * 201, 9: "z" * 200}, tmp_path / "huge.onnx")
    result = runner.invoke(app, ["bundle", str(model), "--web", "-o", str(tmp_path / "site")])
    assert result.exit_code == 0, result.output
    shown = json.loads((tmp_path / "site" / "model.json").read_text())["labels"]
    assert shown[7] == "W" * 199 + "\u2026" and shown[8] == "y" * 199 + "\u2026" and shown[9] == "z" * 200
    assert shown[:7] == imagenet_labels()[:7] and shown[10:] == imagenet_labels()[10:]
    assert "note: 2 labels longer than 200 characters are cut to 200 for the page" in result.output


def test_page_shows_a_label_of_2_mb_cut_and_within_its_width(_need_web: None, r18_image: Path, tmp_path: Path) -> None:
    """A model.json written by hand (or by an older bundle) with a 2 MB label: the page shows 200
    characters of it, and the table stays within the page's width."""
    bundle = _bundle(r18_image, tmp_path / "site")
    names = _photos(bundle / "photos")[:1]
    with Predictor(r18_image, provider="cpu") as predictor:
        top = predictor.predict([bundle / names[0]], top_k=1)[0][0].index
    config = json.loads((bundle / "model.json").read_text())
    config["labels"][top] = HUGE_LABEL
    (bundle / "model.json").write_text(json.dumps(config))
    probe = ("({label: document.querySelector('#top td').textContent, "
             "wide: document.documentElement.scrollWidth, window: window.innerWidth})")
    with BundleServer(bundle) as server:
        report = run_page(server, f"images={names[0]}", timeout=240, evaluate=probe)
    assert report["ok"], report.get("error")
    assert report["results"][0]["top_k"][0]["label"] == HUGE_LABEL  # the report holds the data as it is
    page = report["evaluated"]
    assert page["label"] == "W" * 199 + "\u2026", len(page["label"])
    assert page["wide"] <= page["window"], page  # no horizontal scrolling: the layout holds


def test_bundle_refuses_in_one_line(resnet18_onnx: Path, r18_image: Path, resnet20_features_onnx: Path,
                                    tmp_path: Path) -> None:
    # pixels in, an embedding out: the page would rank its dimensions as classes
    features = load_onnx(resnet20_features_onnx)
    save_onnx(image_input_stage(features, ImageInputSpec(preprocessing_for(features)))[0], tmp_path / "feat_image.onnx")
    cases = [
        (["bundle", str(tmp_path / "feat_image.onnx"), "--web", "-o", str(tmp_path / "h")], "is a features file"),
        (["bundle", str(r18_image), "-o", str(tmp_path / "a")], "--web"),
        (["bundle", str(resnet18_onnx), "--web", "-o", str(tmp_path / "b")], "export it with --image-input"),
        (["bundle", str(r18_image), "--web", "--int8", "-o", str(tmp_path / "c")], "--int8 needs --calibration"),
        (["bundle", str(r18_image), "--web", "-c", str(tmp_path), "-o", str(tmp_path / "d")],
         "--calibration is for --int8"),
        (["bundle", str(r18_image), "--web", "--threads", "-1", "-o", str(tmp_path / "e")], "threads must be"),
        (["bundle", str(r18_image), "--web", "--node-modules", str(tmp_path), "-o", str(tmp_path / "f")],
         "onnxruntime-web is not installed"),
        (["bundle", str(r18_image), "--web", "--page", str(tmp_path), "-o", str(tmp_path / "g")], "give --page"),
        (["bundle", str(r18_image), "--web", "-f", "-o", str(r18_image.parent)], "lies inside --output"),
    ]
    for args, needle in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 1, (args, result.output)
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], (args, result.output)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".") or p.is_dir()]


def test_page_refuses_in_one_line(_need_web: None, r18_image: Path, tmp_path: Path) -> None:
    """A file the browser cannot decode, and an image too large for predict's bound: one line
    naming the file, never a result."""
    bundle = _bundle(r18_image, tmp_path / "site")
    (bundle / "notes.png").write_text("not an image")
    Image.new("RGB", (10000, 1)).save(bundle / "strip.png")  # resized to 2560000x256: beyond PIL's pixel bound
    for name, needle in [("notes.png", "not an image this browser decodes"), ("strip.png", "would be resized beyond")]:
        with BundleServer(bundle) as server:
            report = run_page(server, f"images={name}", timeout=240)
        assert report["ok"] is False and "results" not in report, report
        assert (report["error"].startswith(f"Error: {name}: ") and needle in report["error"]
                and "\n" not in report["error"]), report
    with BundleServer(bundle) as server:  # issue 26 C.5: the page's ?threads= had no upper bound
        report = run_page(server, "images=strip.png&threads=100000", timeout=240)
    assert (report["ok"] is False
            and "?threads= takes a whole number from 0 to 64, received 100000" in report["error"]), report



# -- onnxruntime-web outside a checkout: --node-modules, the user's cache, npm ---------------------
def test_the_pinned_version_is_the_checkouts() -> None:
    """The version bundle installs is the one examples/web's package.json pins (and CI tests)."""
    pinned = json.loads((WEB_EXAMPLE / "package.json").read_text())["dependencies"]["onnxruntime-web"]
    assert pinned == ORT_WEB_VERSION


def test_onnxruntime_web_is_found_in_the_cache_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from resnet_deploy.serving.bundle import assets

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(assets, "WEB_EXAMPLE", tmp_path / "no-checkout")  # as installed from a wheel
    with pytest.raises(rd.InputError, match=r"onnxruntime-web 1\.\d+\.\d+ is not installed: install Node\.js's npm"):
        assets.find_ort_web(install=False)
    dist = assets.ort_web_cache() / "onnxruntime-web" / "dist"
    dist.mkdir(parents=True)
    for name in ORT_WEB_FILES:
        (dist / name).write_bytes(b"")
    (dist.parent / "package.json").write_text(json.dumps({"version": ORT_WEB_VERSION}))
    assert assets.find_ort_web(install=False) == (dist, ORT_WEB_VERSION)
    assert str(tmp_path / "cache" / "resnet-deploy") in str(dist)


def test_force_replaces_a_bundle_and_nothing_else(r18_image: Path, tmp_path: Path) -> None:
    """Issue 26 C.5: --force deleted any existing folder. It replaces a folder bundle wrote (its
    marker in it) or an empty one; a folder of other files is refused in one line, untouched."""
    if not (WEB_EXAMPLE / "node_modules" / "onnxruntime-web").is_dir():
        pytest.skip("examples/web/node_modules is absent")
    mine = tmp_path / "documents"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    result = runner.invoke(app, ["bundle", str(r18_image), "--web", "-o", str(mine), "--force"])
    assert result.exit_code == 1 and "holds files that are not a bundle" in result.output, result.output
    assert result.output.count("\n") == 1 and (mine / "thesis.tex").read_text() == "years of work"
    empty = tmp_path / "empty"
    empty.mkdir()
    _bundle(r18_image, empty, "--force")
    assert (empty / ".resnet-deploy-bundle").is_file()
    _bundle(r18_image, empty, "--force", "--threads", "2")  # a bundle replaces a bundle
    assert json.loads((empty / "model.json").read_text())["threads"] == 2


# Folder names a shell would split, expand or run: the printed command must still name serve.py.
SHELL_NAMES = ["my site", "it's", "$(touch pwned)", "a;b"]


@pytest.mark.parametrize("name", SHELL_NAMES)
def test_the_printed_serve_command_runs_as_pasted(r18_image: Path, tmp_path: Path, name: str) -> None:
    import shlex

    from ..._cli_cases import run_cli

    if not (WEB_EXAMPLE / "node_modules" / "onnxruntime-web").is_dir():
        pytest.skip("examples/web/node_modules is absent")
    out = tmp_path / name
    result = run_cli("bundle", r18_image, "--web", "-o", out)
    assert result.returncode == 0, result.stderr
    command = result.stdout.split("serve it with `", 1)[1].split("`", 1)[0]
    assert shlex.split(command) == ["python3", str(out / "serve.py")], command
