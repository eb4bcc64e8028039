"""export_model over the registry: the artifact's contract, parity with eager PyTorch, safety."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

import resnet_deploy as rd
from resnet_deploy.export.exporter import ExportOptions, export_model
from resnet_deploy.graph.io import load_onnx, op_counts, read_metadata
from resnet_deploy.export.pipeline import ort_outputs
from resnet_deploy.graph.verify import compare

from .._zoo import registry_params

# Full export of every registered model; the deepest take tens of seconds each and run only
# with -m slow (tests/_zoo.py).
NAMES = registry_params()


def _dims(v: onnx.ValueInfoProto) -> list:
    return [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]


@pytest.mark.parametrize("name", NAMES)
def test_export_contract_and_parity(tmp_path: Path, name: str) -> None:
    spec = rd.get_model_spec(name)
    path = tmp_path / f"{name}.onnx"
    result = export_model(ExportOptions(name), path)
    print(name, result.max_rel_error, {s.name: round(s.seconds, 2) for s in result.stages})
    model = load_onnx(path)
    assert [i.name for i in model.graph.input] == ["input"]
    assert [o.name for o in model.graph.output] == ["logits"]
    assert _dims(model.graph.input[0]) == ["batch", 3, spec.image_size, spec.image_size]
    assert _dims(model.graph.output[0]) == ["batch", spec.num_classes]
    assert model.opset_import[0].version >= 17
    counts = op_counts(model)
    assert counts["BatchNormalization"] == 0 and counts["Identity"] == 0
    assert all(n.domain in ("", "ai.onnx") for n in model.graph.node)
    assert result.max_rel_error <= 1e-4 and result.top1_agreement == 1.0
    meta = read_metadata(model)
    assert meta["architecture"] == name and meta["num_classes"] == spec.num_classes
    assert meta["crop_size"] == spec.image_size and meta["channel_order"] == "RGB"
    assert len(meta["mean"]) == 3 and len(meta["std"]) == 3
    assert meta["toolkit_version"] == rd.__version__
    # Independent check of the saved file at a batch size the pipeline did not use.
    x = np.random.default_rng(7).standard_normal((4, 3, spec.image_size, spec.image_size), dtype=np.float32)
    with torch.inference_mode():
        reference = rd.create_model(name)(torch.from_numpy(x)).numpy()
    parity = compare(ort_outputs(model, x), reference)
    print(parity.describe())
    assert parity.ok


def test_options_static_batch_classes_size_labels(tmp_path: Path) -> None:
    labels = [f"class {i}" for i in range(5)]
    path = tmp_path / "m.onnx"
    result = export_model(
        ExportOptions("resnet20", num_classes=5, image_size=48, static_batch=3, labels=labels, opset=20), path
    )
    model = load_onnx(path)
    assert _dims(model.graph.input[0]) == [3, 3, 48, 48]
    assert _dims(model.graph.output[0]) == [3, 5]
    assert model.opset_import[0].version == 20
    meta = read_metadata(model)
    assert meta["labels"] == labels and meta["crop_size"] == 48
    assert result.verify_batches == [3]


def test_weights_are_exported(tmp_path: Path) -> None:
    torch.manual_seed(3)
    trained = rd.create_model("resnet20")
    for p in trained.parameters():
        p.data.add_(torch.randn_like(p) * 0.01)
    ckpt = tmp_path / "w.pth"
    torch.save({"state_dict": trained.state_dict()}, ckpt)
    path = tmp_path / "m.onnx"
    result = export_model(ExportOptions("resnet20", weights=ckpt), path)
    assert "w.pth" in result.weights
    x = np.random.default_rng(1).standard_normal((2, 3, 32, 32), dtype=np.float32)
    with torch.inference_mode():
        reference = trained(torch.from_numpy(x)).numpy()
    assert compare(ort_outputs(load_onnx(path), x), reference).ok


def test_report_is_complete(tmp_path: Path) -> None:
    result = export_model(ExportOptions("resnet20"), tmp_path / "m.onnx")
    data = json.loads(json.dumps(result.to_dict()))
    assert [s["name"] for s in data["stages"]] == ["export", "check", "simplify", "fuse", "verify", "save"]
    assert data["size_bytes"] == (tmp_path / "m.onnx").stat().st_size


@pytest.mark.parametrize(
    "options, match",
    [
        (ExportOptions("resnet20", opset=17), "opset 17 is not supported; choose 18"),
        (ExportOptions("resnet20", static_batch=0), "static-batch"),
        (ExportOptions("resnet20", num_classes=0), "num-classes"),
        (ExportOptions("resnet20", labels=["a", "b"]), "2 labels given for 10 classes"),
    ],
)
def test_bad_options_write_nothing(tmp_path: Path, options: ExportOptions, match: str) -> None:
    path = tmp_path / "m.onnx"
    with pytest.raises(rd.ResnetDeployError, match=match):
        export_model(options, path)
    assert list(tmp_path.iterdir()) == []


def test_failed_export_keeps_the_existing_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "m.onnx"
    path.write_bytes(b"previous")
    import resnet_deploy.export.exporter as export_mod

    def broken(*args: object, **kwargs: object) -> None:
        raise rd.VerificationError("forced")

    monkeypatch.setattr(export_mod, "verify_or_raise", broken)
    with pytest.raises(rd.VerificationError):
        export_model(ExportOptions("resnet20"), path)
    assert path.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]


def test_labels_file_from_a_windows_editor(tmp_path: Path) -> None:
    """A byte-order mark and CRLF line ends (Notepad's UTF-8) are not part of the first name."""
    from resnet_deploy.export.exporter import read_labels_file

    path = tmp_path / "classes.txt"
    path.write_bytes("\ufeffcat\r\ndog\r\n\r\n".encode())
    assert read_labels_file(path) == ["cat", "dog"]
