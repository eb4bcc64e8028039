"""The passes on real ResNets exported the way many users do (BN and Identity left in)."""

from __future__ import annotations

from pathlib import Path

import pytest

import resnet_deploy as rd
from resnet_deploy.graph.io import load_onnx, op_counts
from resnet_deploy.export.optimize import optimize_model

from ...conftest import legacy_export, randomize_bn

CASES = ["resnet20", "plain20", "resnet18", "resnet50"]


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("target", ["portable", "cpu"])
def test_foreign_export_is_cleaned_and_verified(tmp_path: Path, name: str, target: str) -> None:
    spec = rd.get_model_spec(name)
    model = randomize_bn(rd.create_model(name))
    path = legacy_export(model, spec.image_size, tmp_path / f"{name}.onnx")
    original = load_onnx(path)
    n_bn = sum(isinstance(m, __import__("torch").nn.BatchNorm2d) for m in model.modules())
    assert op_counts(original)["BatchNormalization"] == n_bn
    result = optimize_model(original, target, source=str(path))
    optimized, stages, rel, top1 = result.model, result.stages, result.max_rel_error, result.top1_agreement
    counts = op_counts(optimized)
    print(name, target, {s.name: s.note for s in stages}, dict(counts))
    assert counts["BatchNormalization"] == 0 and counts["Identity"] == 0
    assert rel <= 1e-4 and top1 == 1.0
    fused = stages[-1].details["left"]
    assert fused == {}
    if target == "cpu" and not spec.plain:
        assert counts["com.microsoft.FusedConv"] > 0
        assert all(o != "com.microsoft" for o in [n.domain for n in optimized.graph.node if n.op_type == "Add"])
    if target == "portable":
        assert all(n.domain in ("", "ai.onnx") for n in optimized.graph.node)
