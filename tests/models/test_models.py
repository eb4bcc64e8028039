"""The zoo: every registered model builds, runs, and has the published parameter count."""

from __future__ import annotations

import pytest
import torch

import resnet_deploy as rd
from resnet_deploy.models.cifar import CifarBasicBlock

from .._zoo import registry_params

# torchvision's counts for ImageNet models; He et al. 2015 Table 6 for CIFAR (0.27M ... 19.4M).
PARAMS = {
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
}
PAPER_CIFAR_M = {"resnet20": 0.27, "resnet32": 0.46, "resnet44": 0.66, "resnet56": 0.85, "resnet110": 1.7,
                 "resnet1202": 19.4}
ALL = rd.list_models()


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_registry_lists_the_paper_models() -> None:
    assert set(ALL) == {
        "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
        "resnet20", "resnet32", "resnet44", "resnet56", "resnet110", "resnet1202",
        "plain18", "plain34", "plain20", "plain32", "plain44", "plain56", "plain110",
    }


@pytest.mark.parametrize("name", registry_params())  # the deepest with -m slow: their counts are checked below
def test_builds_and_runs(name: str) -> None:
    spec = rd.get_model_spec(name)
    model = rd.create_model(name)
    assert not model.training
    batch = 1 if name == "resnet1202" else 2
    with torch.inference_mode():
        out = model(torch.randn(batch, 3, spec.image_size, spec.image_size))
    assert out.shape == (batch, spec.num_classes)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", [n for n in ALL if n in PARAMS])
def test_imagenet_parameter_counts_match_torchvision(name: str) -> None:
    assert n_params(rd.create_model(name)) == PARAMS[name]


@pytest.mark.parametrize("name", list(PAPER_CIFAR_M))
def test_cifar_parameter_counts_match_table_6(name: str) -> None:
    millions = n_params(rd.create_model(name)) / 1e6
    assert millions == pytest.approx(PAPER_CIFAR_M[name], rel=0.02)  # the paper rounds to 2 digits


@pytest.mark.parametrize("depth", [20, 32, 44, 56, 110])
def test_cifar_plain_twin_has_same_parameters(depth: int) -> None:
    # Option A shortcuts are parameter-free, so a plain net and its ResNet weigh the same.
    assert n_params(rd.create_model(f"plain{depth}")) == n_params(rd.create_model(f"resnet{depth}"))


def test_imagenet_plain_twin_has_no_projection() -> None:
    keys = rd.create_model("plain34").state_dict()
    assert not any("downsample" in k for k in keys)


def test_torchvision_parameter_names() -> None:
    keys = list(rd.create_model("resnet50").state_dict())
    assert len(keys) == 320  # torchvision's resnet50 state_dict, num_batches_tracked included
    for k in ("conv1.weight", "bn1.running_var", "layer1.0.downsample.0.weight", "layer1.0.downsample.1.bias",
              "layer4.2.conv3.weight", "layer4.2.bn3.num_batches_tracked", "fc.weight", "fc.bias"):
        assert k in keys
    assert tuple(rd.create_model("resnet18").state_dict()["layer2.0.downsample.0.weight"].shape) == (128, 64, 1, 1)


def test_option_a_shortcut_zero_pads_and_subsamples() -> None:
    block = CifarBasicBlock(16, 32, stride=2).eval()
    x = torch.randn(1, 16, 8, 8)
    short = block._option_a(x)
    assert short.shape == (1, 32, 4, 4)
    assert torch.equal(short[:, 8:24], x[:, :, ::2, ::2])
    assert short[:, :8].abs().sum() == 0 and short[:, 24:].abs().sum() == 0


def test_cifar_depths_are_6n_plus_2() -> None:
    for name in ALL:
        spec = rd.get_model_spec(name)
        if spec.family == "cifar":
            assert (spec.depth - 2) % 6 == 0
            convs = sum(isinstance(m, torch.nn.Conv2d) for m in spec.builder().modules())
            assert convs + 1 == spec.depth  # conv layers plus the fully connected layer


def test_unknown_names_and_depths_are_refused() -> None:
    with pytest.raises(rd.ModelNotFoundError, match="available"):
        rd.create_model("resnet51")
    with pytest.raises(rd.ModelNotFoundError, match="valid depths: 18, 20, 32, 34, 44, 50"):
        rd.model_name_for_depth(51)
    assert rd.model_name_for_depth(20, plain=True) == "plain20"


def test_macs_match_the_published_figures() -> None:
    assert rd.count_macs(rd.create_model("resnet50"), 224) / 1e9 == pytest.approx(4.09, abs=0.01)
    assert rd.count_macs(rd.create_model("resnet18"), 224) / 1e9 == pytest.approx(1.81, abs=0.01)
