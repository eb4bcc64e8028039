"""`create_model`: the one public way to build a model of the zoo."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

from .._errors import ResnetDeployError
from .._registry import get_model_spec
from .weights import apply_state_dict, load_state_dict

__all__ = ["create_model", "count_macs"]


def create_model(
    name: str,
    num_classes: int | None = None,
    weights: str | Path | None = None,
    *,
    seed: int | None = 0,
) -> nn.Module:
    """Build a registered model in eval mode.

    Args:
        name: a registered name, e.g. ``"resnet50"``, ``"resnet20"``, ``"plain34"``.
        num_classes: classifier width; the family's default (1000 or 10) when None.
        weights: a ``.pth``/``.pt`` (read with ``weights_only=True``) or ``.safetensors`` file,
            loaded strictly. Without it the model keeps its He initialisation.
        seed: seed of the random initialisation, so that the same call builds the same model
            (and ``export`` writes the same file) every time; None uses torch's global RNG.
    """
    spec = get_model_spec(name)
    if num_classes is not None and num_classes < 1:
        raise ResnetDeployError(f"num_classes must be at least 1, received {num_classes}")
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        model = spec.builder(num_classes=num_classes or spec.num_classes)
    if weights is not None:
        apply_state_dict(model, load_state_dict(weights), weights)
    return model.eval()


def count_macs(model: nn.Module, image_size: int) -> int:
    """Multiply-accumulates of one forward pass on a ``[1, 3, S, S]`` input (convs and linears)."""
    total = 0

    def conv_hook(m: nn.Conv2d, _inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        kh, kw = m.kernel_size
        total += out.numel() * (m.in_channels // m.groups) * kh * kw

    def linear_hook(m: nn.Linear, _inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        total += out.numel() * m.in_features

    handles = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    try:
        with torch.inference_mode():
            model(torch.zeros(1, 3, image_size, image_size))
    finally:
        for h in handles:
            h.remove()
    return total
