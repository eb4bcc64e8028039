"""Embeddings instead of classes (``export --features``): the classifier head gives way to the
pooled feature vector, ``[N, 512]`` for ResNet-18/34 and ``[N, 2048]`` from ResNet-50 up (64 for
the CIFAR nets), L2-normalised with ``normalize``. The file says so in its metadata, so that
``Predictor.embed``, ``batch`` and ``predict`` know what its output is.

The graph's normalisation is :func:`~resnet_deploy.graph.embedding.append_l2_normalize`, the one
``optimize --features`` appends too; ``F.normalize`` here is the eager reference it is checked
against."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..graph.embedding import NORMALIZE_EPS, features_metadata

__all__ = ["FeatureExtractor", "features_metadata", "NORMALIZE_EPS"]


class FeatureExtractor(nn.Module):
    """``net`` with ``fc = Identity``: the global-average-pooled features, optionally unit length.

    The net is changed in place (its ``fc`` replaced): the export writes ``net``'s graph and
    appends the normalisation in ONNX; this module's output is what that file is verified against."""

    def __init__(self, net: nn.Module, *, normalize: bool = False) -> None:
        super().__init__()
        if not isinstance(getattr(net, "fc", None), nn.Linear):
            raise TypeError(f"{type(net).__name__} has no Linear classifier head named fc")
        self.dim = int(net.fc.in_features)
        net.fc = nn.Identity()
        self.net = net
        self.normalize = normalize

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.net(x)
        return F.normalize(features, p=2.0, dim=1, eps=NORMALIZE_EPS) if self.normalize else features

