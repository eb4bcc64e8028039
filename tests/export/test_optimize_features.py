"""``optimize --features``: a classifier exported elsewhere (by us, or torch.onnx's TorchScript
exporter as torchvision users run it) becomes the features file ``export --features`` writes of
the same weights, checked against the source graph's own classifier input; what has no pooled
classifier is refused in one line naming the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import resnet_deploy as rd
from resnet_deploy.export.exporter import ExportOptions, export_model
from resnet_deploy.export.features_stage import FeaturesRequest
from resnet_deploy.export.optimize import optimize_file
from resnet_deploy.graph.io import op_counts, read_metadata
from resnet_deploy.graph.verify import fixed_inputs

from .._cli_cases import Case, check_bad_input, error_lines, run_cli
from ..conftest import legacy_export, randomize_bn

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # random weights: the numbers are the point


def _weights(name: str, path: Path, **kwargs: int) -> Path:
    """A checkpoint with non-trivial BatchNorm statistics, so both files fold real numbers."""
    torch.save(randomize_bn(rd.create_model(name, **kwargs), seed=5).state_dict(), path)
    return path


def _classifier_input(path: Path, x: np.ndarray) -> np.ndarray:
    """The source's pre-Gemm tensor, read apart from the library: the Gemm's input made an output."""
    model = onnx.load(str(path))
    gemm = next(n for n in model.graph.node if n.op_type == "Gemm")
    model.graph.output.insert(0, onnx.helper.make_tensor_value_info(gemm.input[0], onnx.TensorProto.FLOAT, None))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run([gemm.input[0]], {session.get_inputs()[0].name: x})[0]


def _rel(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.abs(got.astype(np.float64) - want).max() / np.abs(want).max())


@pytest.mark.parametrize("name, size, normalize", [("resnet20", None, False), ("resnet20", None, True),
                                                    ("resnet18", 64, True)])
def test_optimize_features_equals_export_features(tmp_path: Path, name: str, size: int | None, normalize: bool) -> None:
    ckpt = _weights(name, tmp_path / "w.pth")
    classifier, exported, cut = tmp_path / "c.onnx", tmp_path / "e.onnx", tmp_path / "o.onnx"
    export_model(ExportOptions(name, weights=ckpt, image_size=size), classifier)
    export_model(ExportOptions(name, weights=ckpt, image_size=size, features=True, normalize=normalize), exported)
    result = optimize_file(classifier, cut, features=FeaturesRequest(normalize))
    stage = next(s for s in result.stages if s.name == "features")
    print(f"{name}: {stage.note}; result max rel error {result.max_rel_error:.2e}")
    assert result.max_rel_error <= 1e-4
    edge = size or rd.get_model_spec(name).image_size
    x = fixed_inputs((3, 3, edge, edge), seed=11)
    with rd.Predictor(exported, provider="cpu") as a, rd.Predictor(cut, provider="cpu") as b:
        want, got = a.run(x), b.run(x)
        assert b.output_kind == "embedding" and b.labels is None
    pooled = _classifier_input(classifier, x).astype(np.float64)
    if normalize:
        pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
    print(f"{name} normalize {normalize}: vs export --features {_rel(got, want):.2e}, "
          f"vs the source's Gemm input {_rel(got, pooled):.2e}")
    assert got.shape == want.shape == (3, stage.details["embedding_dim"])
    assert _rel(got, want) <= 1e-5 and _rel(got, pooled) <= 1e-5
    model = onnx.load(str(cut))
    assert [o.name for o in model.graph.output] == ["embedding"] and "Gemm" not in op_counts(model)
    assert not {"fc.weight", "fc.bias"} & {t.name for t in model.graph.initializer}  # the classifier's weights are gone
    assert cut.stat().st_size < classifier.stat().st_size
    meta, want_meta = read_metadata(model), read_metadata(onnx.load(str(exported)))
    for key in ("output", "embedding_dim", "normalized", "architecture", "crop_size", "mean", "std"):
        assert meta[key] == want_meta[key], key
    assert "num_classes" not in meta


def test_a_torchscript_export_becomes_the_features_file(tmp_path: Path) -> None:
    """torchvision users' export (opset 17, GlobalAveragePool -> Flatten -> Gemm, BatchNorm left
    in) through the command: equal to export --features --normalize of the same weights."""
    ckpt = _weights("resnet20", tmp_path / "w.pth")
    net = rd.create_model("resnet20", weights=ckpt).eval()
    foreign = legacy_export(net, 32, tmp_path / "foreign.onnx")
    exported, cut = tmp_path / "e.onnx", tmp_path / "o.onnx"
    export_model(ExportOptions("resnet20", weights=ckpt, features=True, normalize=True), exported)
    result = run_cli("optimize", foreign, "-o", cut, "--features", "--normalize")
    assert result.returncode == 0, result.stderr
    assert "parity vs the original's classifier input: max rel error" in " ".join(result.stdout.split())  # wrapped
    x = fixed_inputs((4, 3, 32, 32), seed=2)
    with rd.Predictor(exported, provider="cpu") as a, rd.Predictor(cut, provider="cpu") as b:
        rel = _rel(b.run(x), a.run(x))
    print(f"torchscript export, optimize --features --normalize vs export --features --normalize: {rel:.2e}")
    assert rel <= 1e-5
    model = onnx.load(str(cut))
    reduce = next(n for n in model.graph.node if n.op_type == "ReduceSum")
    assert len(reduce.input) == 2 and model.opset_import[0].version == 17  # the file's own opset, axes an input
    assert read_metadata(model)["normalized"] is True


def test_an_image_input_classifier_keeps_its_pixels_in(tmp_path: Path, sample_image: Path) -> None:
    """An --image-input file (no top-k): the float classifier is cut and the preprocessing put back."""
    classifier, exported, cut = tmp_path / "ci.onnx", tmp_path / "e.onnx", tmp_path / "o.onnx"
    export_model(ExportOptions("resnet20", image_input=True), classifier)
    export_model(ExportOptions("resnet20", features=True, image_input=True), exported)
    optimize_file(classifier, cut, features=FeaturesRequest())
    with rd.Predictor(exported, provider="cpu") as a, rd.Predictor(cut, provider="cpu") as b:
        want, got = a.embed([sample_image]), b.embed([sample_image])
    assert got.shape == (1, 64) and _rel(got, want) <= 1e-5


@pytest.fixture(scope="module")
def refused(tmp_path_factory: pytest.TempPathFactory, resnet20_onnx: Path) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("refused")
    files = {"model": resnet20_onnx, "marker": d / "never-written"}
    files["features.onnx"] = d / "features.onnx"
    export_model(ExportOptions("resnet20", features=True), files["features.onnx"])
    files["topk.onnx"] = d / "topk.onnx"
    export_model(ExportOptions("resnet20", image_input=True, image_input_top_k=3), files["topk.onnx"])
    files["headless.onnx"] = d / "headless.onnx"  # a classifier with the Gemm already gone: its output is a Reshape
    model = onnx.load(str(resnet20_onnx))
    gemm = next(n for n in model.graph.node if n.op_type == "Gemm")
    model.graph.node.remove(gemm)
    model.graph.output[0].name = gemm.input[0]
    model.graph.output[0].type.tensor_type.shape.dim[1].dim_value = 64
    onnx.save(model, str(files["headless.onnx"]))
    return files


CASES = [
    Case("features-of-features", ["optimize", "{features.onnx}", "-o", "{out}", "--features"],
         ["features.onnx is a features file already"]),
    Case("features-no-classifier", ["optimize", "{headless.onnx}", "-o", "{out}", "--features"],
         ["headless.onnx has no classifier to cut", "comes from Reshape"]),
    Case("features-in-graph-top-k", ["optimize", "{topk.onnx}", "-o", "{out}", "--features"],
         ["topk.onnx ranks classes in the graph (top-k 3)"]),
    Case("features-asked-top-k",
         ["optimize", "{model}", "-o", "{out}", "--features", "--image-input", "--image-input-top-k", "2"],
         ["a features file has no classes to rank: drop --image-input-top-k"]),
    Case("normalize-without-features", ["optimize", "{model}", "-o", "{out}", "--normalize"],
         ["--normalize applies to embeddings: add --features"]),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_what_cannot_become_a_features_file_is_one_line(case: Case, refused: dict[str, Path], tmp_path: Path) -> None:
    check_bad_input(case, refused, tmp_path)


def test_the_refusal_names_the_file_before_writing(refused: dict[str, Path], tmp_path: Path) -> None:
    result = run_cli("optimize", refused["headless.onnx"], "-o", tmp_path / "x.onnx", "--features")
    assert result.returncode == 1 and error_lines(result.stderr)[0].startswith(f"error: {refused['headless.onnx']}")
    assert not (tmp_path / "x.onnx").exists()
