"""The eager PyTorch side of ``compare``: the model an ONNX file was exported from, rebuilt from
its ``architecture`` metadata and weights, with every block's output read by forward hooks.

Block names are the module names (``layer2.0``), which is what :mod:`.blocks` reads from the
weights of an exported graph; the stem's output is that of ``maxpool`` (ImageNet ResNets) or of
the top-level ``relu`` (CIFAR ResNets, which have no max-pool), the head's the logits.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from .._errors import InputError, OnnxModelError
from .._extras import require
from .._hashing import file_sha256

__all__ = ["eager_block_outputs", "eager_block_chunks"]


def _check_weights(metadata: dict[str, Any], weights: str | Path | None, label: str) -> str:
    arch = metadata.get("architecture")
    if not isinstance(arch, str) or not arch:
        raise OnnxModelError(f"{label} carries no architecture metadata: "
                             "eager PyTorch can rebuild only this toolkit's exports")
    recorded = str(metadata.get("weights", ""))
    if weights is None:
        if not recorded.startswith("random init"):
            raise InputError(f"{label} was exported from {recorded or 'unknown weights'}; "
                             "pass --weights to compare with eager PyTorch")
        return arch
    if not Path(weights).is_file():
        raise InputError(f"--weights not found: {weights}")
    digest = re.search(r"sha256 ([0-9a-f]+)", recorded)
    if digest is None or not file_sha256(weights).startswith(digest.group(1)):
        raise InputError(f"--weights {Path(weights).name} is not what {label} was exported from "
                         f"({recorded or 'no record'})")
    return arch


def eager_block_outputs(
    metadata: dict[str, Any], weights: str | Path | None, x: np.ndarray, names: list[str], *, label: str = "model"
) -> list[np.ndarray]:
    """Each block's output (``names`` as :func:`find_blocks` named them) from eager PyTorch fp32."""
    chunks = list(eager_block_chunks(metadata, weights, x, names, label=label))
    return [np.concatenate([c[i] for c in chunks]) for i in range(len(names))]


def eager_block_chunks(
    metadata: dict[str, Any], weights: str | Path | None, x: np.ndarray, names: list[str], *, label: str = "model",
    chunk: int = 8
) -> Iterator[list[np.ndarray]]:
    """:func:`eager_block_outputs`, ``chunk`` samples at a time (the model is built once)."""
    require("compare against eager PyTorch", "torch")
    import torch

    from ..models import create_model

    arch = _check_weights(metadata, weights, label)
    net = create_model(arch, num_classes=int(metadata.get("num_classes", 0)) or None, weights=weights)
    stem = getattr(net, "maxpool", None) or net.relu
    modules = {"stem": stem}
    for name in names[1:-1]:
        try:
            modules[name] = net.get_submodule(name)
        except AttributeError:
            raise OnnxModelError(f"{label}'s block {name} is not a module of {arch}") from None
    captured: dict[str, np.ndarray] = {}
    hooks = []
    for name, module in modules.items():
        def hook(_m: Any, _inp: Any, out: Any, name: str = name) -> None:
            captured[name] = out.detach().numpy().copy()  # copied: ReLUs run in place

        hooks.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            for start in range(0, len(x), chunk):
                captured[names[-1]] = net(torch.from_numpy(np.ascontiguousarray(x[start : start + chunk]))).numpy()
                yield [captured[n] for n in names]
    finally:
        for h in hooks:
            h.remove()
