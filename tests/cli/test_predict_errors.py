"""predict: bad models, images, metadata and profiles end in one line; answers and warnings mean what they say.

The rows run in-process (``tests/_cli_cases.py``); ``tests/cli/test_e2e.py`` runs a few through the
real entry point.
"""

from __future__ import annotations

from pathlib import Path

import warnings

import numpy as np
import pytest
from PIL import Image

import resnet_deploy as rd
from resnet_deploy.runtime import Predictor

from .._cli_cases import TOO_MANY, Case, check_bad_input, external_cases, run_cli, strict_json
from ..preprocess.test_preprocess_modes import MODE_FILES, _exif_photo, _mode_image

CASES = [
    Case("predict-not-image", ["predict", "{model}", "{notimage.jpg}"], ["not a readable image", "notimage.jpg"], []),
    Case("predict-missing-image", ["predict", "{model}", "{tmp}/nope.png"], ["image not found", "nope.png"], []),
    Case("predict-corrupt-model", ["predict", "{corrupt.onnx}", "{notimage.jpg}"], ["corrupt.onnx"], []),
    Case("predict-provider", ["predict", "{model}", "{notimage.jpg}", "--provider", "cuda"],
         ["provider 'cuda' is not available", "available: "], []),
    Case("predict-nan-logits", ["predict", "{nan.onnx}", "{image.png}"],
         ["nan.onnx", "non-finite logits", "image.png"], []),
    Case("predict-inf-logits-json", ["predict", "{inf.onnx}", "{image.png}", "{image.png}", "--json"],
         ["inf.onnx", "non-finite logits", "2 of 2"], []),
    # bounded resources: thread counts, batch, resize work, Triton's numbers
    # (one above the cap, so that a broken cap costs a few threads, not the 14,500 of --threads 99999)
    Case("predict-threads-absurd", ["predict", "{model}", "{image.png}", "--threads", TOO_MANY],
         ["threads must be at most", "cores", TOO_MANY], []),
    # no untyped exits: what used to end in "unexpected TypeError/AxisError/ValueError"
    Case("predict-4d-output", ["predict", "{out4d.onnx}", "{image.png}"],
         ["out4d.onnx", "[1, 3, 32, 32]", "logits [N, classes]"], []),
    Case("predict-scalar-output", ["predict", "{scalar.onnx}", "{image.png}"],
         ["scalar.onnx", "shape []", "logits [N, classes]"], []),
    Case("predict-batch-size-0", ["predict", "{model}", "{image.png}", "--batch-size", "0"],
         ["batch_size must be at least 1"], []),
    Case("predict-resize-bomb", ["predict", "{model}", "{wide.png}"], ["wide.png", "100000x1", "3200000x32"], []),
    Case("predict-folder-without-images", ["predict", "{model}", "{emptydir}"], ["no images", "emptydir"], []),
    # metadata validated once at load, naming the file and the key
    Case("meta-labels-count", ["predict", "{labels3.onnx}", "{image.png}"],
         ["labels3.onnx", "'labels' has 3 names for 10 classes"], []),
    Case("meta-mean-length", ["predict", "{meanlen.onnx}", "{image.png}"],
         ["meanlen.onnx", "'mean' must be 3 finite numbers"], []),
    Case("meta-zero-std", ["predict", "{zerostd.onnx}", "{image.png}"], ["zerostd.onnx", "'std' must be positive"], []),
    Case("meta-size-not-a-number", ["predict", "{strsize.onnx}", "{image.png}"],
         ["strsize.onnx", "'crop_size' must be a whole number", "abc"], []),
    Case("meta-size-negative", ["predict", "{negsize.onnx}", "{image.png}"],
         ["negsize.onnx", "'resize_size' must be between 1", "-5"], []),
    Case("meta-crop-vs-input", ["predict", "{cropsize.onnx}", "{image.png}"],
         ["cropsize.onnx", "'crop_size' 24 differs from the model's input height 32"], []),
    Case("meta-resize-below-crop", ["predict", "{smallresize.onnx}", "{image.png}"],
         ["smallresize.onnx", "'resize_size' 16 is smaller than the crop 32"], []),
    Case("meta-channel-order", ["predict", "{order.onnx}", "{image.png}"],
         ["order.onnx", "'channel_order' must be RGB or BGR", "XYZ"], []),
    Case("meta-num-classes", ["predict", "{numclasses.onnx}", "{image.png}"],
         ["numclasses.onnx", "'num_classes' is 7", "10 classes"], []),
    Case("predict-unknown-provider", ["predict", "{model}", "{notimage.jpg}", "--provider", "tpu"],
         ["unknown provider 'tpu'"], []),
    # no untyped exits, round two: inputs that are not float tensors, bad external-data entries,
    # checkpoints of tensors that are not plain dense ones (they ended in "unexpected
    # ValueError/RuntimeError", or, for int64 pixels, in an answer computed from truncated floats)
    Case("predict-int64-input", ["predict", "{int64.onnx}", "{image.png}"],
         ["int64.onnx", "input 'x' is int64", "needs a float input"], []),
    Case("predict-sequence-input", ["predict", "{seqin.onnx}", "{image.png}"],
         ["seqin.onnx", "input 'x' is not a tensor"], []),
    Case("predict-decompression-bomb", ["predict", "{model}", "{bomb.png}"],
         ["refused", "bomb.png", "decompression bomb"], []),
    Case("predict-truncated-png", ["predict", "{model}", "{cut.png}"],
         ["not a readable image", "cut.png", "truncated"], []),
    # round three: a file we read is data, typed and bounded; deep nesting is refused, never a RecursionError
    Case("meta-labels-deep", ["predict", "{deeplabels.onnx}", "{image.png}"],
         ["deeplabels.onnx", "'labels' is JSON nested more than 32 levels"], []),
    Case("profile-session-profile-dir", ["predict", "--profile", "{profiledir.json}", "{image.png}"],
         ["profiledir.json", "field 'session.profile_dir' is not one a profile may set"], []),
    Case("profile-static-batch-string", ["predict", "--profile", "{staticbatch.json}", "{image.png}"],
         ["staticbatch.json", "field 'session.static_batch' must be an integer from 1 to 4096"], []),
    Case("profile-source-model-number", ["predict", "--profile", "{sourcemodel.json}", "{image.png}"],
         ["sourcemodel.json", "field 'source_model' must be a string, received 5"], []),
    Case("profile-deep-json", ["predict", "--profile", "{deepprofile.json}", "{image.png}"],
         ["deepprofile.json", "nests more than 4 levels"], []),
    *external_cases("predict", ["{image.png}"], []),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_table(case: Case, files: dict[str, Path], tmp_path: Path) -> None:
    check_bad_input(case, files, tmp_path)


def test_predictor_refuses_non_finite_logits(files: dict[str, Path]) -> None:
    with Predictor(files["nan.onnx"], provider="cpu") as p:
        with pytest.raises(rd.NonFiniteOutputError, match=r"nan\.onnx computed non-finite logits .* 1 of 1 images"):
            p.predict(files["image.png"])
        assert np.isnan(p.run(p.preprocess([files["image.png"]]))).all()  # run() hands back what the model computed


def test_predict_streams_batches_and_reads_folders(files: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """predict DIR takes the folder's images (sorted, non-images skipped) and runs them
    --batch-size at a time: memory bounded by the batch, answers identical to one big batch."""
    listed = sorted(files["imgdir"].glob("*.png"))
    streamed = run_cli("predict", files["model"], files["imgdir"], "--batch-size", "2", "--json", "--provider", "cpu")
    whole = run_cli("predict", files["model"], *listed, "--batch-size", "16", "--json", "--provider", "cpu")
    assert streamed.returncode == 0 and whole.returncode == 0, streamed.stderr + whole.stderr
    got, expected = strict_json(streamed.stdout), strict_json(whole.stdout)
    assert [e["image"] for e in got] == [str(p) for p in listed]
    assert {e["provider"] for e in got} == {"cpu"}  # the JSON says which provider ran
    assert [[(k["index"], round(k["score"], 5)) for k in e["top_k"]] for e in got] == \
        [[(k["index"], round(k["score"], 5)) for k in e["top_k"]] for e in expected]
    with Predictor(files["model"], provider="cpu") as p:
        shapes: list[int] = []
        run = p.run
        monkeypatch.setattr(p, "run", lambda batch: (shapes.append(len(batch)), run(batch))[1])
        assert len(p.predict(listed, batch_size=2)) == 5
    assert shapes == [2, 2, 1]


def test_sixteen_bit_images_match_their_8_bit_twins(files: dict[str, Path], tmp_path: Path) -> None:
    """A 16-bit PNG gives the tensor of its 8-bit twin within 1/255 (PIL alone clips it to white);
    a float image is refused by name."""
    from PIL import Image

    from resnet_deploy.preprocess.images import Preprocessing

    gray8 = (np.arange(48 * 40).reshape(40, 48) * 7 % 256).astype(np.uint8)
    Image.fromarray(gray8).save(tmp_path / "g8.png")
    Image.fromarray(gray8.astype(np.uint16) * 257).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")
    pre = Preprocessing(36, 32, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    assert np.abs(pre(tmp_path / "g16.png") - pre(tmp_path / "g8.png")).max() <= 1 / 255
    Image.fromarray(gray8.astype(np.float32) / 255).save(tmp_path / "f.tiff")
    result = run_cli("predict", files["model"], tmp_path / "f.tiff")
    assert result.returncode == 1 and "f.tiff" in result.stderr and "mode F" in result.stderr, result.stderr


def test_model_without_metadata_says_so(files: dict[str, Path]) -> None:
    result = run_cli("predict", files["nometa.onnx"], files["image.png"], "--provider", "cpu")
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "nometa.onnx has no preprocessing metadata" in warnings[0], result.stderr
    assert "warning:" not in run_cli("predict", files["trained.onnx"], files["image.png"], "--provider", "cpu").stderr


def test_random_weights_are_named_before_any_answer(files: dict[str, Path]) -> None:
    """`export` without --weights records the seeded random initialisation; predict and Predictor
    say so once, instead of answering "paintbrush 0.0011" as if it meant something."""
    result = run_cli("predict", files["model"], files["image.png"], "--provider", "cpu", "--json")
    lines = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert result.returncode == 0 and len(lines) == 1, result.stderr
    assert ("resnet20.onnx holds the seeded random initialisation, not trained weights" in lines[0]
            and "--weights" in lines[0])
    with pytest.warns(UserWarning, match="resnet20.onnx holds the seeded random initialisation"):
        Predictor(files["model"], provider="cpu").close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Predictor(files["trained.onnx"], provider="cpu").close()


def test_image_modes_through_predict(files: dict[str, Path], tmp_path: Path) -> None:
    """The real entry point: every mode's file, and a sideways phone photo, gets the answer of
    its twin, a PNG of the expected RGB pixels; nothing on stderr but the provider line."""
    pairs = []
    for name in MODE_FILES:
        source, expected = _mode_image(name, tmp_path)
        Image.fromarray(expected).save(tmp_path / f"twin-{name}.png")
        pairs.append((name, f"twin-{name}.png"))
    decoded = _exif_photo(tmp_path / "photo.jpg", 6)
    Image.fromarray(np.ascontiguousarray(np.rot90(decoded, -1))).save(tmp_path / "upright.png")
    Image.fromarray(decoded).save(tmp_path / "sideways.png")  # the stored pixels, EXIF ignored
    pairs.append(("photo.jpg", "upright.png"))
    names = [n for pair in pairs for n in pair] + ["sideways.png"]
    result = run_cli("predict", files["trained.onnx"], *(tmp_path / n for n in names), "--json", "--provider", "cpu",
                     "--top-k", "10")
    assert result.returncode == 0 and result.stderr.strip() == "", result.stderr
    scores = {Path(e["image"]).name: {k["index"]: k["score"] for k in e["top_k"]} for e in strict_json(result.stdout)}
    for name, twin in pairs:
        assert scores[name] == pytest.approx(scores[twin], rel=1e-5, abs=1e-7), name
    assert scores["sideways.png"] != pytest.approx(scores["upright.png"], rel=1e-5, abs=1e-7)
