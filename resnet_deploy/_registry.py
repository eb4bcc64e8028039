"""The model registry: `@register_model` entry points looked up by `create_model(name)` (after timm).

Filled when :mod:`resnet_deploy.models` is imported (which imports torch); this module does not
import torch itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from ._errors import ModelNotFoundError

if TYPE_CHECKING:  # the registry itself needs no torch; the builders it holds do
    import torch.nn as nn

__all__ = ["ModelSpec", "register_model", "list_models", "get_model_spec", "model_name_for_depth"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Per-channel statistics of the CIFAR-10 training set, as commonly used for the paper's CIFAR nets.
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


@dataclass(frozen=True)
class ModelSpec:
    """What a registered model is and how its inputs must be prepared."""

    name: str
    family: str  # "imagenet" or "cifar"
    depth: int
    plain: bool
    builder: Callable[..., nn.Module]
    num_classes: int
    image_size: int
    resize_size: int
    mean: tuple[float, float, float] = field(default=IMAGENET_MEAN)
    std: tuple[float, float, float] = field(default=IMAGENET_STD)
    # Multiply-accumulates of one image at the default size, for GFLOP/s in the benchmark.
    # Filled lazily by `resnet_deploy.models.count_macs` when needed.


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(
    *,
    family: str,
    depth: int,
    plain: bool = False,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register a builder under ``resnet{depth}`` or ``plain{depth}``; a duplicate name is an error."""

    def decorator(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        name = builder.__name__
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        if family == "imagenet":
            spec = ModelSpec(name, family, depth, plain, builder, 1000, 224, 256)
        elif family == "cifar":
            spec = ModelSpec(name, family, depth, plain, builder, 10, 32, 32, CIFAR_MEAN, CIFAR_STD)
        else:
            raise ValueError(f"unknown model family {family!r}")
        _REGISTRY[name] = spec
        return builder

    return decorator


def list_models(*, plain: bool | None = None) -> list[str]:
    """Registered model names, ImageNet first then CIFAR, each by depth."""
    specs = sorted(_REGISTRY.values(), key=lambda s: (s.family != "imagenet", s.plain, s.depth))
    return [s.name for s in specs if plain is None or s.plain == plain]


def get_model_spec(name: str) -> ModelSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ModelNotFoundError(
            f"unknown model {name!r}; available: {', '.join(list_models())}"
        ) from None


def model_name_for_depth(depth: int, *, plain: bool = False) -> str:
    """Map the CLI's ``--depth N [--plain]`` to a registered name, listing valid depths otherwise."""
    prefix = "plain" if plain else "resnet"
    name = f"{prefix}{depth}"
    if name not in _REGISTRY:
        depths = sorted(s.depth for s in _REGISTRY.values() if s.plain == plain)
        kind = "plain" if plain else "ResNet"
        raise ModelNotFoundError(
            f"no {kind} of depth {depth}; valid depths: {', '.join(map(str, depths))}"
        )
    return name
