"""``export --features``: embeddings instead of classes, verified against the same net with
``fc = Identity`` in eager PyTorch, unit length with ``--normalize``, through ``--image-input``,
``Predictor.embed`` and the refusals of what a features file cannot do."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from typer.testing import CliRunner

import resnet_deploy as rd
from resnet_deploy.export.exporter import ExportOptions, export_model
from resnet_deploy.export.features import FeatureExtractor
from resnet_deploy.graph.io import read_metadata
from resnet_deploy.graph.verify import fixed_inputs
from resnet_deploy_cli.main import app

from .._zoo import registry_params

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # random weights: the numbers are the point

# The pooled width of every registered net (the issue: 512 for ResNet-18/34, 2048 from ResNet-50 up).
WIDTH = {"resnet18": 512, "resnet34": 512, "resnet50": 2048, "resnet101": 2048, "resnet152": 2048}


@pytest.mark.parametrize("name", registry_params())
def test_the_embedding_is_the_pooled_width(name: str) -> None:
    spec = rd.get_model_spec(name)
    extractor = FeatureExtractor(rd.create_model(name)).eval()
    assert extractor.dim == WIDTH.get(name.replace("plain", "resnet"), 64)
    size = min(spec.image_size, 64)  # global pooling: the width does not depend on the image size
    with torch.inference_mode():
        out = extractor(torch.from_numpy(fixed_inputs((2, 3, size, size))))
    assert out.shape == (2, extractor.dim)


@pytest.mark.parametrize("name, size, normalize", [("resnet20", None, False), ("resnet20", None, True),
                                                    ("resnet18", 64, False)])
def test_features_equal_eager_with_fc_identity(tmp_path: Path, name: str, size: int | None, normalize: bool) -> None:
    """The file's output against a net built apart (same seed, fc = Identity, the normalisation
    written out by hand here): max rel error <= 1e-4."""
    path = tmp_path / f"{name}_features.onnx"
    result = export_model(ExportOptions(name, image_size=size, features=True, normalize=normalize), path)
    print(f"{name}: max rel error {result.max_rel_error:.2e}")
    assert result.max_rel_error <= 1e-4
    net = rd.create_model(name).eval()
    net.fc = torch.nn.Identity()
    edge = size or rd.get_model_spec(name).image_size
    x = fixed_inputs((3, 3, edge, edge), seed=7)
    with torch.inference_mode():
        want = net(torch.from_numpy(x)).numpy().astype(np.float64)
    if normalize:
        want /= np.maximum(np.linalg.norm(want, axis=1, keepdims=True), 1e-12)
    with rd.Predictor(path, provider="cpu") as predictor:
        got = predictor.run(x)
        assert predictor.output_kind == "embedding" and predictor.labels is None
    rel = np.abs(got - want).max() / np.abs(want).max()
    print(f"{name} size {edge} normalize {normalize}: rel error vs hand-built eager {rel:.2e}")
    assert got.shape == (3, WIDTH.get(name, 64)) and rel <= 1e-4
    if normalize:
        np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, rtol=1e-5)
    model = onnx.load(str(path))
    assert [o.name for o in model.graph.output] == ["embedding"]
    meta = read_metadata(model)
    assert meta["output"] == "embedding" and meta["embedding_dim"] == got.shape[1] and meta["normalized"] is normalize
    assert "num_classes" not in meta and "labels" not in meta


def test_image_input_features_embed_photos_as_the_float_file(tmp_path: Path, sample_image: Path) -> None:
    """One file, pixels in, embedding out: Predictor.embed of the photo equals the float features
    file's within the image-input tolerance (PIL's resize against the graph's)."""
    float_file, image_file = tmp_path / "f.onnx", tmp_path / "fi.onnx"
    export_model(ExportOptions("resnet20", features=True, normalize=True), float_file)
    export_model(ExportOptions("resnet20", features=True, normalize=True, image_input=True), image_file)
    with rd.Predictor(float_file, provider="cpu") as a, rd.Predictor(image_file, provider="cpu") as b:
        ea, eb = a.embed([sample_image, sample_image], batch_size=1), b.embed([sample_image])
    print(f"image-input vs float features: max abs diff {np.abs(ea[0] - eb[0]).max():.2e}")
    assert ea.shape == (2, 64) and eb.shape == (1, 64) and ea.dtype == np.float32
    np.testing.assert_allclose(eb[0], ea[0], atol=2e-3)


def test_a_classifier_has_no_embedding_and_a_features_file_no_classes(tmp_path: Path, resnet20_onnx: Path,
                                                                     sample_image: Path) -> None:
    path = tmp_path / "f.onnx"
    export_model(ExportOptions("resnet20", features=True), path)
    with rd.Predictor(resnet20_onnx, provider="cpu") as classifier, \
            pytest.raises(rd.InputError, match="is a classifier"):
        classifier.embed([sample_image])
    with rd.Predictor(path, provider="cpu") as features, \
            pytest.raises(rd.InputError, match="outputs embeddings, not classes"):
        features.predict([sample_image])
    r = CliRunner().invoke(app, ["predict", str(path), str(sample_image)])
    assert r.exit_code == 1 and "use Predictor.embed, or resnet-deploy batch" in r.output and r.output.count("\n") == 1


@pytest.mark.parametrize("args, needle", [
    (["--normalize"], "--normalize applies to embeddings: add --features"),
    (["--features", "--image-input", "--image-input-top-k", "3"], "has no classes to rank"),
])
def test_features_refusals_are_one_line(tmp_path: Path, args: list[str], needle: str) -> None:
    out = tmp_path / "x.onnx"
    r = CliRunner().invoke(app, ["export", "--depth", "20", "-o", str(out), *args])
    assert r.exit_code == 1 and needle in r.output, r.output
    assert not out.exists()
