"""What the zoo holds: one row per registered model, for ``resnet-deploy models``.

Every model is built on PyTorch's ``meta`` device: shapes without storage, so counting the
parameters and multiply-accumulates of all of them (ResNet-1202 included) takes a few seconds
and no memory.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass
from typing import Any

import torch

from .._registry import get_model_spec, list_models
from ._factory import count_macs
from .cifar import CifarBasicBlock
from .resnet import BasicBlock, Bottleneck

__all__ = ["ModelRow", "describe_models"]

_BLOCK_KINDS = {BasicBlock: "basic", Bottleneck: "bottleneck", CifarBasicBlock: "basic"}


@dataclass(frozen=True)
class ModelRow:
    name: str
    family: str  # imagenet or cifar
    depth: int
    blocks: int  # residual (or, for plain nets, would-be residual) blocks
    block: str  # basic or bottleneck
    shortcut: str  # where shapes change: zero-pad (A), projection (B) or none (section 3.3 of the paper)
    parameters: int
    macs: int  # multiply-accumulates of one image at image_size
    image_size: int
    num_classes: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _shortcut(family: str, plain: bool) -> str:
    if plain:
        return "none"
    # ImageNet nets project where the shape changes (option B); the CIFAR nets zero-pad (option A).
    return "zero-pad (A)" if family == "cifar" else "projection (B)"


@functools.cache  # the registry is filled once, at import
def describe_models(*, plain: bool | None = None) -> tuple[ModelRow, ...]:
    """One row per registered model (ImageNet first, then CIFAR, each by depth)."""
    rows = []
    for name in list_models(plain=plain):
        spec = get_model_spec(name)
        with torch.device("meta"):
            model = spec.builder(num_classes=spec.num_classes).eval()
            macs = count_macs(model, spec.image_size)
        blocks = [_BLOCK_KINDS[type(m)] for m in model.modules() if type(m) in _BLOCK_KINDS]
        rows.append(ModelRow(name, spec.family, spec.depth, len(blocks), blocks[0], _shortcut(spec.family, spec.plain),
                             sum(p.numel() for p in model.parameters()), macs, spec.image_size, spec.num_classes))
    return tuple(rows)
